import numpy as np
import pytest

from echojepa.data.tracings import (
    disk_volume,
    ef_from_tracings,
    ef_from_volumes,
    read_volume_tracings,
    volume_from_rows,
)


def _cylinder_rows(length: float, diameter: float, n: int = 20) -> np.ndarray:
    axis = [0.0, 0.0, 0.0, length]
    ys = (np.arange(n) + 0.5) / n * length
    chords = np.stack([-diameter / 2 * np.ones(n), ys, diameter / 2 * np.ones(n), ys], axis=1)
    return np.vstack([axis, chords])


def test_disk_volume_of_a_cylinder_is_exact():
    rows = _cylinder_rows(8.0, 3.0)
    assert disk_volume(rows[0], rows[1:]) == pytest.approx(np.pi / 4 * 3.0**2 * 8.0)


def test_disk_volume_of_a_half_ellipsoid_matches_the_closed_form():
    length, diam, n = 9.0, 5.0, 20
    s = (np.arange(n) + 0.5) / n
    half = diam / 2 * np.sqrt(s * (2 - s))
    chords = np.stack([-half, s * length, half, s * length], axis=1)
    v = disk_volume((0, 0, 0, length), chords)
    assert v == pytest.approx(np.pi / 6 * length * diam**2, rel=1e-3)


def test_disk_volume_rejects_malformed_chords():
    with pytest.raises(ValueError):
        disk_volume((0, 0, 0, 1), np.zeros((0, 4)))
    with pytest.raises(ValueError):
        volume_from_rows(np.zeros((1, 4)))


def test_ef_from_volumes():
    assert ef_from_volumes(100.0, 40.0) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        ef_from_volumes(0.0, 0.0)


def test_ef_from_tracings_takes_the_larger_volume_as_end_diastole():
    ed, es = _cylinder_rows(8.0, 4.0), _cylinder_rows(8.0, 3.0)
    expected = 100 * (1 - 9 / 16)
    assert ef_from_tracings({5: es, 12: ed}) == pytest.approx(expected)
    assert ef_from_tracings({5: ed, 12: es}) == pytest.approx(expected)
    with pytest.raises(ValueError):
        ef_from_tracings({1: ed})


def test_read_volume_tracings_groups_rows_by_file_and_frame_in_file_order(tmp_path):
    p = tmp_path / "VolumeTracings.csv"
    p.write_text(
        "FileName,X1,Y1,X2,Y2,Frame\na.avi,1,2,3,4,10\na.avi,5,6,7,8,10\na.avi,9,9,9,9,30\nb.avi,0,0,1,1,2\n"
    )
    t = read_volume_tracings(p)
    assert sorted(t) == ["a.avi", "b.avi"]
    assert sorted(t["a.avi"]) == [10, 30]
    np.testing.assert_array_equal(t["a.avi"][10], [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_read_volume_tracings_names_the_file_on_bad_input(tmp_path):
    p = tmp_path / "VolumeTracings.csv"
    p.write_text("FileName,X,Y,Frame\na.avi,1,2,3\n")
    with pytest.raises(ValueError, match="VolumeTracings.csv"):
        read_volume_tracings(p)
    p.write_text("FileName,X1,Y1,X2,Y2,Frame\na.avi,1,x,3,4,1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_volume_tracings(p)
