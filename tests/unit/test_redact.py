"""Secrets in URLs masked: in text, and in every log line once guard_logs() is set up (as the
CLI and the server do), httpx's request lines included."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from facelens.system.redact import MaskSecrets, endpoint, guard_logs, mask


def test_secrets_in_urls_are_masked_in_credentials_and_query() -> None:
    assert mask("rtsp://admin:hunter2@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    assert (
        mask("http://cam/snap.cgi?channel=1&api_key=abc&Password=x&subtype=0&X-Amz-Signature=s")
        == "http://cam/snap.cgi?channel=1&api_key=***&Password=***&subtype=0&X-Amz-Signature=***"
    )
    assert mask("https://h/hook?access_token=a.b.c#top") == "https://h/hook?access_token=***#top"
    said = "Client error '404' for url 'http://u:p@h/x?apikey=k1&pwd=k2'"
    assert mask(said) == "Client error '404' for url 'http://***@h/x?apikey=***&pwd=***'"
    assert mask("/videos/door.mp4") == "/videos/door.mp4"
    assert mask("rtsp://cam/cam/realmonitor?channel=1&subtype=0") == (
        "rtsp://cam/cam/realmonitor?channel=1&subtype=0"
    )


@pytest.mark.usefixtures("guarded")
def test_guarded_logs_mask_what_any_logger_says_and_silence_httpx_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "http://user:s3cret@hook.lan/in?token=t0ken&channel=1"
    guard_logs()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    assert "HTTP Request" not in caplog.text  # httpx's per-request lines: off
    guard_logs(debug=True)  # --debug: on, masked
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        logging.getLogger().exception("delivery to %s failed", url)  # a traceback too
    assert "POST http://***@hook.lan/in?token=***&channel=1" in caplog.text
    assert "s3cret" not in caplog.text and "t0ken" not in caplog.text
    guard_logs(debug=True)  # again: one filter each, not two
    assert sum(isinstance(f, MaskSecrets) for f in logging.getLogger("httpx").filters) == 1


@pytest.mark.usefixtures("guarded")
def test_a_peers_text_cannot_drive_the_terminal_or_forge_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A webhook receiver answered 500 with '\\x1b[2J' and a bell: they reached the log raw."""
    guard_logs()
    caplog.set_level(logging.INFO)
    answer = "\x1b[2J\x07oops\r\nINFO facelens: forged line \u202etxt.exe"
    logging.getLogger("facelens.events.delivery").warning("webhook answered 500: %s", answer)
    line = caplog.records[-1].getMessage()
    assert not any(ch in line for ch in "\x1b\x07\r\n\u202e"), line
    assert "\\x1b[2J\\x07oops\\r\\nINFO facelens: forged line \\u202etxt.exe" in line


def test_a_target_is_shown_as_its_scheme_host_and_port_only() -> None:
    hook = "http://user:pw@homeassistant.lan:8123/api/webhook/f8a2-secret-id?token=t&channel=1"
    assert endpoint(hook) == "http://***@homeassistant.lan:8123/…"
    assert endpoint("https://hooks.example/") == "https://hooks.example"
    assert endpoint("mqtt://broker.lan") == "mqtt://broker.lan"
    assert endpoint("mqtts://u:p@[fd00::5]:8883") == "mqtts://***@[fd00::5]:8883"
    assert endpoint("http://h:99999/x") == "***"  # not a URL: nothing of it


def test_what_a_process_writes_to_its_standard_error_is_masked_line_by_line() -> None:
    # As FFmpeg does (a C library writing to fd 2), in pieces, and right before the end.
    script = (
        "import os, sys\n"
        "from facelens.system.redact import guard_stderr\n"
        "guard_stderr()\n"
        'os.write(2, b"[hls @ 0x1] Error when loading first segment \'http://h/s.ts?tok")\n'
        'os.write(2, b"en=SEGTOKEN99&k=1\'\\nrtsp://admin:hunter2@cam/live\\n")\n'
        "print('from Python: http://h/x?api_key=KEY7', file=sys.stderr)\n"
        "os.write(2, b'last words without a line break: ?password=PW8')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "[hls @ 0x1] Error when loading first segment 'http://h/s.ts?token=***&k=1'",
        "rtsp://***@cam/live",
        "from Python: http://h/x?api_key=***",
        "last words without a line break: ?password=***",
    ]
