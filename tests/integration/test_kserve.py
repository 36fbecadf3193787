"""The Open Inference Protocol v2 (KServe) routes, called by tritonclient from PyPI (in a
virtual environment of its own) against a real server with the shared people enrolled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client_envs import run_client
from tests.support.helpers import Probe
from tests.support.server import Server

pytestmark = pytest.mark.integration

TRITON = """
import base64
import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException
client = http.InferenceServerClient(url=ARGS["url"])
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "models_ready": [client.is_model_ready(m) for m in ARGS["models"]],
    "server": client.get_server_metadata(),
    "metadata": client.get_model_metadata("face-recognize"),
    "runs": {},
}
photos = [open(p, "rb").read() for p in ARGS["photos"]]
for binary in (True, False):
    image = http.InferInput("image", [len(photos)], "BYTES")
    # JSON BYTES must be text: images go base64 there, raw in the binary extension.
    data = photos if binary else [base64.b64encode(p) for p in photos]
    image.set_data_from_numpy(np.array(data, dtype=object), binary_data=binary)
    wanted = [http.InferRequestedOutput(n, binary_data=binary)
              for n in ("names", "distances", "boxes", "counts")]
    named = client.infer("face-recognize", [image], outputs=wanted)
    embedded = client.infer("face-embed", [image])
    detected = client.infer("face-detect", [image], parameters={"threshold": 0.5})
    out["runs"][str(binary)] = {
        "names": [[n.decode() if isinstance(n, bytes) else n for n in row]
                  for row in named.as_numpy("names").tolist()],
        "counts": named.as_numpy("counts").tolist(),
        "boxes": named.as_numpy("boxes").shape,
        "embedding": list(embedded.as_numpy("embedding").shape),
        "norms": np.linalg.norm(embedded.as_numpy("embedding"), axis=1).tolist(),
        "scores": detected.as_numpy("scores").shape,
    }
try:
    client.get_model_metadata("face-nope")
except InferenceServerException as exc:
    out["unknown_model"] = str(exc)
print(json.dumps(out, default=list))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, people_dir: Path) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("kserve") / "data")
    try:
        for folder in sorted(people_dir.iterdir()):
            running.client.post("/v1/people", json={"name": folder.name})
            files = [("images", (p.name, p.read_bytes())) for p in sorted(folder.iterdir())]
            assert running.client.post(f"/v1/people/{folder.name}/faces", files=files).is_success
        yield running
    finally:
        running.stop()


def test_tritonclient_checks_health_metadata_and_infers_in_both_encodings(
    server: Server, probes: list[Probe]
) -> None:
    chosen = [p for p in probes if p.file.name in ("obama_and_biden.jpg", "alex_lacamoire1.jpg")]
    result = run_client(
        "tritonclient",
        TRITON,
        url=server.url.removeprefix("http://"),
        photos=[str(p.file) for p in chosen],
        models=["face-detect", "face-embed", "face-recognize"],
    )
    assert result["live"] and result["ready"] and result["models_ready"] == [True] * 3
    assert result["server"]["extensions"] == ["binary_tensor_data"]
    outputs = {o["name"] for o in result["metadata"]["outputs"]}
    assert outputs == {"names", "distances", "confidences", "boxes", "counts"}
    assert "face-nope" in result["unknown_model"]
    expected = [sorted(p.expected) for p in chosen]
    for binary, run in result["runs"].items():
        counts = run["counts"]
        named = [sorted(row[:count]) for row, count in zip(run["names"], counts, strict=True)]
        assert named == expected, (binary, run)
        assert run["boxes"] == [2, max(counts), 4] and run["scores"][0] == 2
        assert run["embedding"] == [2, server.profile.dim]
        if server.profile.metric == "cosine":
            assert all(abs(n - 1) < 1e-3 for n in run["norms"])
