"""The one rule for reading files qrate did not write (qrate/readers/safeio.py)."""

import os
import threading

import pytest

from qrate.readers.safeio import UnsafeFileError, check_regular, read_regular


def test_regular_file_inside_its_tree_is_read(tmp_path):
    (tmp_path / "a.xmp").write_bytes(b"<x/>")
    assert read_regular(str(tmp_path / "a.xmp"), root=str(tmp_path)) == b"<x/>"


def test_symlink_within_the_tree_is_read_and_out_of_it_refused(tmp_path):
    tree = tmp_path / "shoot"
    tree.mkdir()
    (tree / "real.xmp").write_bytes(b"inside")
    (tmp_path / "secret").write_bytes(b"outside")
    os.symlink(tree / "real.xmp", tree / "in.xmp")
    os.symlink(tmp_path / "secret", tree / "out.xmp")
    assert read_regular(str(tree / "in.xmp"), root=str(tree)) == b"inside"
    with pytest.raises(UnsafeFileError) as e:
        read_regular(str(tree / "out.xmp"), root=str(tree))
    assert e.value.code == "outside_tree"


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null"])
def test_devices_are_refused(tmp_path, target):
    os.symlink(target, tmp_path / "dev.xmp")
    with pytest.raises(UnsafeFileError) as e:
        read_regular(str(tmp_path / "dev.xmp"))
    assert e.value.code == "not_regular"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "IMG.xmp"
    os.mkfifo(fifo)
    result = []
    t = threading.Thread(target=lambda: result.append(_code(lambda: read_regular(str(fifo)))), daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert result == ["not_regular"]


def test_size_cap_and_folders(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 1000)
    assert _code(lambda: read_regular(str(tmp_path / "big"), max_bytes=999)) == "too_large"
    assert _code(lambda: check_regular(str(tmp_path))) == "not_regular"
    with pytest.raises(FileNotFoundError):
        read_regular(str(tmp_path / "gone"))


def _code(fn):
    try:
        fn()
    except UnsafeFileError as e:
        return e.code
    return None


def test_a_sibling_folder_with_the_same_prefix_is_outside(tmp_path):
    (tmp_path / "shoot").mkdir()
    (tmp_path / "shoot2").mkdir()
    (tmp_path / "shoot2" / "x.xmp").write_bytes(b"other shoot")
    os.symlink(tmp_path / "shoot2" / "x.xmp", tmp_path / "shoot" / "x.xmp")
    assert _code(lambda: read_regular(str(tmp_path / "shoot" / "x.xmp"), root=str(tmp_path / "shoot"))) == "outside_tree"


def test_open_regular_gives_the_opened_files_stat_and_refuses_a_fifo(tmp_path):
    from qrate.readers.safeio import open_regular, open_regular_file

    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8data")
    fd, st = open_regular(str(tmp_path / "a.jpg"))
    try:
        assert st.st_size == 6 and os.read(fd, 10) == b"\xff\xd8data"
    finally:
        os.close(fd)
    with open_regular_file(str(tmp_path / "a.jpg")) as f:
        assert f.read() == b"\xff\xd8data"
    os.mkfifo(tmp_path / "p.jpg")
    assert _code(lambda: open_regular_file(str(tmp_path / "p.jpg"))) == "not_regular"
    assert _code(lambda: open_regular(str(tmp_path / "p.jpg"))) == "not_regular"
