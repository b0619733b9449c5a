from tests.harness import Harness


async def test_start_answers(harness: Harness) -> None:
    calls = await harness.send("/start")
    assert [c.method for c in calls] == ["sendMessage"]
    assert "Welcome, Ann" in calls[0].text
