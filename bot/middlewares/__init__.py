"""Update middlewares, outermost first (see ``bot.app.setup_middlewares``):

errors → unit of work → user → locale → rate limit → tier gate → metering.
"""
