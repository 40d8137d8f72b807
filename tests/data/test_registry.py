"""The format registry: `read_index` dispatches by format and names the valid formats and options."""

from __future__ import annotations

from pathlib import Path

import pytest

from echojepa.data.datasets import read_index


def test_read_index_unknown_format_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="echonet_dynamic.*echonet_pediatric.*mimic"):
        read_index("camus", tmp_path)


def test_read_index_unknown_option_names_valid_ones(dynamic_root: Path) -> None:
    with pytest.raises(ValueError, match="test_fold.*valid options.*on_error"):
        read_index("echonet_dynamic", dynamic_root, test_fold=3)


def test_read_index_dispatches_to_reader(dynamic_root: Path) -> None:
    index = read_index("echonet_dynamic", dynamic_root)
    assert index.format == "echonet_dynamic" and len(index) == 4
