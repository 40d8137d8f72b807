import pytest
import torch

from echojepa.io.weights import WeightsFileError, read_weights_file


class NotWeights:
    """An object that needs code to unpickle."""


def _write(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"this is not a torch file at all")
    elif kind == "truncated":
        torch.save({"w": torch.ones(64, 64)}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "code":
        torch.save({"w": NotWeights()}, path)
    elif kind == "not_a_dict":
        torch.save([torch.ones(2)], path)
    return path


REASONS = {
    "missing": "not found",
    "directory": "not a file",
    "empty": "empty",
    "garbage": "not a readable torch file",
    "truncated": "not a readable torch file",
    "code": "refused",
    "not_a_dict": "expected a dict",
}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_an_unusable_weights_file_is_one_line_naming_the_file_and_the_reason(tmp_path, kind):
    path = _write(tmp_path, kind)
    with pytest.raises(WeightsFileError) as info:
        read_weights_file(path, "checkpoint")
    message = str(info.value)
    assert message.startswith(str(path)) and REASONS[kind] in message
    assert "\n" not in message and "weights_only" not in message


def test_the_caller_chooses_the_error_type(tmp_path):
    class MyError(Exception):
        pass

    with pytest.raises(MyError, match="bundle file not found"):
        read_weights_file(tmp_path / "x.pt", "bundle", error=MyError)


def test_a_plain_weights_file_is_read_back(tmp_path):
    torch.save({"w": torch.arange(3)}, tmp_path / "ok.pt")
    assert torch.equal(read_weights_file(tmp_path / "ok.pt")["w"], torch.arange(3))
