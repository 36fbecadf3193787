"""Which sources a stream may read (``FACELENS_STREAM_*``), and the FFmpeg options that keep
it to them: no server, no FFmpeg."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from facelens.errors import InvalidValue, SourceNotAllowed
from facelens.settings import Settings
from facelens.video.policy import CONTAINERS, SourcePolicy, ffmpeg_value


def policy(tmp_path: Path, *, any_local: bool = False, **settings: str) -> SourcePolicy:
    return SourcePolicy.of(Settings(data_dir=tmp_path / "data", **settings), any_local=any_local)


def refusal(p: SourcePolicy, source: str) -> str:
    with pytest.raises(SourceNotAllowed) as refused:
        p.check(source, source)
    assert refused.value.code == "source_not_allowed"
    return str(refused.value).removeprefix(f"{source}: ")


def test_by_default_only_network_urls_of_four_schemes_are_allowed(tmp_path: Path) -> None:
    p = policy(tmp_path)
    for allowed in ("rtsp://cam/live", "rtsps://cam/live", "http://cam/x.mjpg", "https://cam/"):
        assert p.check(allowed, allowed).kind == "url"
    refused = {
        refusal(p, s)
        for s in (
            "file:///etc/passwd",
            "ftp://10.0.0.1/x.mp4",
            "tcp://10.0.0.1:25",
            "udp://10.0.0.1:53",
            "data:text/plain,hi",
            "concat:/etc/passwd|/etc/group",
            "http:///nohost",
            "0",
            "/dev/video0",
            "/etc/shadow",
            "/etc/no-such-file",
            "relative/clip.mp4",
        )
    }
    assert len(refused) == 1  # one message for every refusal: it tells nothing of the path


def test_files_only_under_the_folders_and_never_out_of_them_by_symlink_or_dots(
    tmp_path: Path,
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "door.mp4").write_bytes(b"x")
    (videos / "escape.mp4").symlink_to("/etc/hostname")
    (videos / "dangling.mp4").symlink_to("/etc/no-such-file")
    p = policy(tmp_path, stream_folders=str(videos))
    target = p.check(str(videos / "door.mp4"), "door")
    assert (target.kind, target.open_as) == ("file", str(videos / "door.mp4"))
    options = dict(item.split(";") for item in target.ffmpeg_options.split("|"))
    assert options == {"protocol_whitelist": "file", "format_whitelist": ",".join(CONTAINERS)}
    inside_missing = p.check(str(videos / "later.mp4"), "later")  # inside: may be looked at
    assert inside_missing.kind == "file"
    messages = {
        refusal(p, s)
        for s in (
            str(videos / "escape.mp4"),
            str(videos / "dangling.mp4"),
            f"{videos}/../videos-not/x.mp4",
            f"{videos}/../../etc/shadow",
            f"{videos}-2/x.mp4",  # a name that starts like the folder is not inside it
        )
    }
    assert len(messages) == 1


def test_cameras_only_those_listed_and_the_cli_reads_any_file_or_camera(tmp_path: Path) -> None:
    p = policy(tmp_path, stream_devices="/dev/video2")
    assert p.check("2", "2").open_as == 2
    assert p.check("/dev/video2", "/dev/video2").kind == "device"
    refusal(p, "/dev/video0")
    refusal(p, "0")
    refusal(p, "/dev/../etc/shadow")
    cli = policy(tmp_path, any_local=True)
    assert cli.check("/etc/hostname", "x").open_as == "/etc/hostname"
    assert cli.check("/etc/hostname", "x").ffmpeg_options == "protocol_whitelist;file"
    assert cli.check("0", "0").open_as == 0


def test_only_ascii_digits_name_a_camera_and_control_characters_are_refused(
    tmp_path: Path,
) -> None:
    # A superscript two and a full-width zero are digits to str.isdigit; int("²") raised
    # ValueError, a 500 over HTTP.
    cli = policy(tmp_path, any_local=True)
    for odd in ("²", "\uff10", "1²"):
        assert cli.check(odd, odd).kind == "file"  # a (relative) file name, not a camera
    server = policy(tmp_path, stream_devices="/dev/video0")
    assert server.check("0", "0").open_as == 0
    for odd in ("²", "\uff10"):
        refusal(server, odd)  # SourceNotAllowed, an InvalidValue: 422
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "door.mp4").write_bytes(b"x")
    folders = policy(tmp_path, stream_folders=str(videos))
    for bad in (f"{videos}/door.mp4\x00/etc/passwd", f"{videos}/door.mp4\n", "rtsp://c\x00m/x"):
        for p in (folders, cli):
            with pytest.raises(InvalidValue, match="control character"):
                p.check(bad, bad)
    assert refusal(cli, "ftp://h/x").startswith("not a source 'facelens watch' may read")


def test_urls_may_be_bound_to_networks_their_host_resolves_into(tmp_path: Path) -> None:
    local = policy(tmp_path, stream_networks="127.0.0.0/8,::1/128")
    assert local.check("rtsp://localhost:8554/live", "x").kind == "url"
    assert local.check("http://127.0.0.1/x", "x").kind == "url"
    refusal(local, "http://10.1.2.3/x")
    refusal(local, "http://no-such-host.invalid/x")  # not resolved: not allowed either
    elsewhere = policy(tmp_path, stream_networks="10.0.0.0/8")
    assert "FACELENS_STREAM_NETWORKS" in refusal(elsewhere, "http://localhost/x")
    # Not looked up when asked not to (a server starting before its DNS is up): later, at open.
    assert elsewhere.check("http://localhost/x", "x", resolve=False).kind == "url"


def test_with_networks_set_ffmpeg_gets_the_address_checked_and_the_host_name_as_header(
    tmp_path: Path,
) -> None:
    local = policy(tmp_path, stream_networks="127.0.0.0/8,::1/128")
    first = socket.getaddrinfo("localhost", 8080)[0][4][0]  # the resolver's first answer
    at = f"[{first}]" if ":" in first else first
    http = local.check("http://user:p%40ss@localhost:8080/cam.mjpg?token=t", "x")
    assert http.open_as == f"http://user:p%40ss@{at}:8080/cam.mjpg?token=t"
    options = dict(item.split(";", 1) for item in http.ffmpeg_options.split("|"))
    # Escaped for av_dict_parse_string, which would trim the trailing CRLF and the space.
    assert options["headers"] == ffmpeg_value("Host: localhost:8080\r\n")
    assert options["headers"] == "Host:\\ localhost:8080\\\r\\\n"
    assert options["format_whitelist"] == ",".join(CONTAINERS)  # no playlist: no other host
    rtsp = local.check("rtsp://LocalHost/live", "x")
    assert rtsp.open_as == f"rtsp://{at}/live" and "headers" not in rtsp.ffmpeg_options
    literal = local.check("http://127.0.0.2:81/x", "x")  # an address already: as it is
    assert literal.open_as == "http://127.0.0.2:81/x" and "headers" not in literal.ffmpeg_options
    # Not resolved, nothing to pin; and without networks, any host as it is, playlists too.
    assert local.check("http://localhost/x", "x", resolve=False).open_as == "http://localhost/x"
    anywhere = policy(tmp_path).check("http://localhost/x.m3u8", "x")
    assert anywhere.open_as == "http://localhost/x.m3u8"
    assert "format_whitelist" not in anywhere.ffmpeg_options


def test_option_values_are_escaped_for_ffmpeg() -> None:
    assert ffmpeg_value("a|b;c'd\\e f") == "a\\|b\\;c\\'d\\\\e\\ f"


def test_ffmpeg_may_use_only_the_allowed_schemes_protocols_and_follows_no_redirect(
    tmp_path: Path,
) -> None:
    options = policy(tmp_path).check("http://cam/x.m3u8", "x").ffmpeg_options
    assert dict(item.split(";") for item in options.split("|")) == {
        "protocol_whitelist": "http,https,tcp,tls",  # no file, data, udp, rtp, ftp, ...
        "max_redirects": "0",
        "rtsp_transport": "tcp",
    }
    only_rtsp = policy(tmp_path, stream_schemes="rtsp").check("rtsp://cam/x", "x")
    assert "protocol_whitelist;tcp|" in only_rtsp.ffmpeg_options
    refusal(policy(tmp_path, stream_schemes="rtsp"), "http://cam/x")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("stream_schemes", "rtsp,file"),
        ("stream_schemes", "ftp"),
        ("stream_folders", "videos"),
        ("stream_devices", "/etc/video0"),
        ("stream_networks", "10.0.0.0/33"),
    ],
)
def test_bad_stream_settings_are_refused_at_start(setting: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{setting: value})


def test_a_refusal_is_an_invalid_value(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue):  # 422 over HTTP, the CLI's exit code for bad values
        policy(tmp_path).check("/etc/shadow", "/etc/shadow")
