"""The nightly report the CI examples run: `ava jobs run nightly-report --input '{"ref": ...}'`."""


def handler(input, env):
    ref = input.get("ref", "unknown")
    print(f"building the report for {ref} into {env['CHANNEL']}", flush=True)
    # the secret arrives in env (never in the container's environment); a handler that printed
    # it would see it redacted to *** in the job's log
    authorized = bool(env["REPORT_TOKEN"])
    print("report done", flush=True)
    return {"ref": ref, "channel": env["CHANNEL"], "authorized": authorized}
