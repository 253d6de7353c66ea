"""Mistakes mypy must catch (tests/test_typing.py checks each error is reported). Never run."""

import asyncio

import adde
import adde.aio

adde.create_runtime_env("python:3.12-slim", dependancies=["requests"])  # E: dependancies
adde.execute_code_block("c", "main.py", "print(1)", timeout_secs=5)  # E: timeout_secs
adde.aio.execute_command("c", "ls", timout_sec=5)  # E: timout_sec
log = adde.execute_code_block("c", "main.py", "print(1)")["log"]
log["stdot"]  # E: stdot
exit_code: str = log["exit_code"]  # E: exit_code is an int
adde.create_runtime_env("python:3.12-slim", pull="sometimes")  # E: pull is a literal
asyncio.run(adde.aio.ping(verbose=True))  # E: verbose
adde.Client().execute_code_block("c", "main.py", "print(1)", timeout_secs=5)  # E: timeout_secs
