"""Re-fetch the vendored JavaScript from npm and verify it against the pinned hashes.

The files, their npm package, version and sha256 are listed in
``bot/web/static/vendor/vendor.json``. For each package this runs ``npm pack
<package>@<version>`` (npm's own client, the registry it is configured with) in
a temporary directory, takes each listed file out of the tarball and compares
its sha256 with the pin.

    python scripts/vendor_js.py            # verify: the checked-in files, and npm's, match the pins
    python scripts/vendor_js.py --write    # also copy npm's files over the checked-in ones (after a pin change)

Exit status 1 when anything differs. To move to a new version: change the
version in vendor.json, run with ``--write``, review, then put the new hashes
printed here into vendor.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "bot" / "web" / "static" / "vendor" / "vendor.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(package: str, version: str, into: Path) -> Path:
    """``npm pack`` one pinned version; returns the tarball's path."""
    out = subprocess.run(
        ["npm", "pack", f"{package}@{version}", "--silent"], cwd=into, check=True, capture_output=True, text=True
    )
    return into / out.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="copy npm's files over the checked-in ones")
    args = parser.parse_args(argv)
    files = json.loads(MANIFEST.read_text())["files"]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        tarballs: dict[tuple[str, str], Path] = {}
        for item in files:
            key = (item["package"], item["version"])
            if key not in tarballs:
                tarballs[key] = pack(*key, Path(tmp))
            with tarfile.open(tarballs[key]) as tar:
                member = tar.extractfile(f"package/{item['source']}")
                if member is None:
                    print(f"MISSING  {item['package']}@{item['version']}: {item['source']}")
                    bad += 1
                    continue
                fetched = member.read()
            dest = ROOT / item["dest"]
            got = sha256(fetched)
            if args.write:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(fetched)
            local = sha256(dest.read_bytes()) if dest.exists() else "absent"
            ok = got == item["sha256"] == local
            bad += not ok
            print(f"{'ok' if ok else 'DIFFERS':8} {item['package']}@{item['version']} {item['source']} -> {item['dest']}"
                  + ("" if ok else f"\n         pinned {item['sha256']}\n         npm    {got}\n         here   {local}"))  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
