"""AVA python example: greets `input["name"]`, using a config value from env."""


async def handler(input: dict, env: dict) -> dict:
    greeting = env.get("GREETING", "Hello")
    print(f"greeting {input.get('name')!r}")  # a log line, never the result
    return {"message": f"{greeting}, {input.get('name', 'world')}!", "job": env.get("AVA_JOB_ID")}
