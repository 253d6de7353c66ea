"""A run's output as it arrives: `on_stdout`/`on_stderr` callbacks (sync and asyncio) and the
async iterator of events, against a fake binary that streams as the real one does."""

import asyncio
from typing import List

import pytest

import adde
import adde.aio


def test_callbacks_get_the_output_in_order_and_the_result_comes_back(fake_adde):
    fake_adde("stream")
    seen: List[str] = []
    out = adde.execute_code_block(
        "c1", "main.py", "print(1)", on_stdout=lambda s: seen.append("out:" + s), on_stderr=lambda s: seen.append("err:" + s)
    )
    assert seen == ["out:a\n", "err:oops\n", "out:\u00e9\n"]
    assert out["log"]["stdout"] == "a\n\u00e9\n"
    # The run was asked to stream; a run without callbacks is not.
    assert out["payload"]["stream"] is True
    plain = adde.execute_command("c1", "true")
    assert "stream" not in plain["payload"]


def test_only_the_callbacks_given_are_called(fake_adde):
    fake_adde("stream")
    errors: List[str] = []
    adde.execute_command("c1", ["ls"], on_stderr=errors.append)
    assert errors == ["oops\n"]


def test_a_failed_streamed_run_raises_after_its_output(fake_adde):
    fake_adde("stream", FAKE_ADDE_CODE="supervisor_died")
    seen: List[str] = []
    with pytest.raises(adde.AddeError) as caught:
        adde.execute_code_block("c1", "a.py", "x", on_stdout=seen.append)
    assert caught.value.error_code == "supervisor_died"
    assert seen == ["a\n", "\u00e9\n"]


def test_asyncio_callbacks_and_the_event_iterator(fake_adde):
    fake_adde("stream")

    async def main() -> None:
        seen: List[str] = []
        out = await adde.aio.execute_command("c1", "echo", on_stdout=seen.append)
        assert seen == ["a\n", "\u00e9\n"]
        assert out["log"]["exit_code"] == 0
        events = [event async for event in adde.aio.stream_code_block("c1", "a.py", "x", timeout_sec=5)]
        assert [e["event"] for e in events] == ["stdout", "stderr", "stdout", "result"]
        last = events[-1]
        assert last["event"] == "result" and last["result"]["log"]["stderr"] == "oops\n"

    asyncio.run(main())


def test_leaving_the_iterator_early_stops_the_call(fake_adde):
    fake_adde("stream")

    async def main() -> None:
        stream = adde.aio.stream_command("c1", "yes")
        async for event in stream:
            assert event["event"] == "stdout"
            break
        await stream.aclose()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_failed_stream_raises_after_its_events(fake_adde):
    fake_adde("stream", FAKE_ADDE_CODE="container_not_found")

    async def main() -> List[str]:
        kinds: List[str] = []
        async for event in adde.aio.stream_command("c1", "x"):
            kinds.append(event["event"])
        return kinds

    with pytest.raises(adde.NotFound):
        asyncio.run(main())
