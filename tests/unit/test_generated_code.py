"""Generated code must be exactly what the tools make from proto/ today, so a .proto edit
without `make proto` fails here instead of at a client: the server's generated/, and the
client package's own copy made by the older pinned generator (tools/client_protogen.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "clients" / "python" / "src"


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(base: Path, under: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(base): p.read_bytes()
        for p in under.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _assert_same(fresh: dict[Path, bytes], committed: dict[Path, bytes]) -> None:
    assert sorted(fresh) == sorted(committed)
    stale = [str(name) for name, data in fresh.items() if committed[name] != data]
    assert stale == [], f"run `make proto`: stale files {stale}"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    tmp_path.joinpath("generated").mkdir()
    out = tmp_path / "generated"
    _tool("protogen").generate(out)
    _assert_same(_files(out, out), _files(ROOT / "generated", ROOT / "generated"))


def test_client_generated_code_is_fresh(tmp_path: Path) -> None:
    _tool("client_protogen").generate(tmp_path)
    package = Path("segsvc_client") / "_proto"
    _assert_same(_files(tmp_path, tmp_path / package), _files(CLIENT_SRC, CLIENT_SRC / package))


def test_client_code_asks_for_the_oldest_runtimes_it_claims() -> None:
    """The generated code's own version checks must admit the lowest pins of the client's
    pyproject (protobuf 5.29, grpcio 1.66): a newer generator would silently raise them."""
    proto_dir = CLIENT_SRC / "segsvc_client" / "_proto" / "segmentation" / "v1"
    for module in proto_dir.glob("*_pb2.py"):
        assert "Protobuf Python Version: 5.27.2" in module.read_text(), module.name
    for module in proto_dir.glob("*_pb2_grpc.py"):
        assert "GRPC_GENERATED_VERSION = '1.66.0'" in module.read_text(), module.name


def test_go_stubs_are_fresh(tmp_path: Path) -> None:
    go_root = ROOT / "clients" / "go"
    package = Path("segmentation") / "v1"
    _tool("go_protogen").generate(tmp_path)
    _assert_same(_files(tmp_path, tmp_path / package), _files(go_root, go_root / package))
