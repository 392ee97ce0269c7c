"""`python -m allinone.data.check`: sizes against the published ones, unreadable sets and missing images."""
import io
import os

from allinone.data.check import check, main


def test_check_reports_sizes_and_their_published_values(mini_root):
    out = io.StringIO()
    assert check(["Market1501", "LFW"], mini_root, check_files=True, out=out)
    assert "Market1501      (24, 6, 5, 22) (published (12936, 751, 3368, 15913))" in out.getvalue()
    assert "LFW             (40,) (published (6000,))" in out.getvalue()


def test_check_fails_on_an_unreadable_set(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "VeRi"]) == 1
    assert "VeRi            NOT READABLE: missing folder" in capsys.readouterr().out


def test_check_files_finds_a_missing_image(copy_of):
    root = copy_of("faces_emore_val")
    os.remove(os.path.join(root, "faces_emore_val", "lfw", "00007.jpg"))
    out = io.StringIO()
    assert not check(["LFW"], root, check_files=True, out=out)
    assert "unreadable images, e.g. " in out.getvalue() and "lfw/00007.jpg (missing)" in out.getvalue()


def test_check_files_finds_a_zero_byte_and_a_non_image_file(copy_of):
    root = copy_of("faces_emore_val")
    open(os.path.join(root, "faces_emore_val", "lfw", "00002.jpg"), "wb").close()
    with open(os.path.join(root, "faces_emore_val", "lfw", "00005.jpg"), "wb") as f:
        f.write(b"this is not a JPEG")
    out = io.StringIO()
    assert not check(["LFW"], root, check_files=True, out=out)
    assert "lfw/00002.jpg (empty)" in out.getvalue() and "lfw/00005.jpg (not an image)" in out.getvalue()


def test_a_wrong_command_line_is_exit_code_2(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["--no-such-option"])
    assert exit_info.value.code == 2
