"""The pieces of a batch run that keep results safe, in process: which
pictures an --input names (mgc.preprocess.inputs), why a picture cannot be
read (load_image), and the output folder's lock, markers and checks
(mgc.export.run_folder). experiments/reconstruct.py is tested end to end in
test_reconstruct.py."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from mgc.export import index_page, run_folder
from mgc.job_files import FailureList
from mgc.preprocess import ImageError, load_image
from mgc.preprocess.inputs import InputError, collect_pictures


def write_picture(path, size=(8, 6)):
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return str(path)


def bomb_png(path, side=100000):
    """A PNG whose header claims side x side pixels: Pillow refuses it on
    opening, before decoding anything."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return str(path)


# --- --input ------------------------------------------------------------------

def test_existing_names_with_commas_and_brackets_are_taken_literally(tmp_path):
    comma = write_picture(tmp_path / "face,1.jpg")
    bracket = write_picture(tmp_path / "face[1].jpg")
    write_picture(tmp_path / "face1.jpg")  # what the glob face[1].jpg would match
    assert collect_pictures(comma) == [comma]
    assert collect_pictures(bracket) == [bracket]
    assert collect_pictures(f"{bracket},{comma}") == [bracket, comma]


def test_list_file_gives_one_literal_path_per_line(tmp_path):
    comma = write_picture(tmp_path / "face,1.jpg")
    star = write_picture(tmp_path / "a*.png")
    (tmp_path / "list.txt").write_text(f"# pictures\n{comma}\n\na*.png\nmissing[2].jpg\n")
    found = collect_pictures(f"@{tmp_path / 'list.txt'}")
    assert found == [comma, star, str(tmp_path / "missing[2].jpg")]  # relative to the list
    with pytest.raises(InputError, match=r"list file @.*nothere\.txt"):
        collect_pictures(f"@{tmp_path / 'nothere.txt'}")


def test_folders_keep_entries_that_are_not_regular_files(tmp_path):
    good = write_picture(tmp_path / "good.png")
    os.symlink(tmp_path / "loop.jpg", tmp_path / "loop.jpg")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "notes.txt").write_text("not a picture extension\n")
    (tmp_path / "sub.jpg").mkdir()
    assert collect_pictures(str(tmp_path)) == [good, str(tmp_path / "loop.jpg"),
                                               str(tmp_path / "pipe.png")]


# --- load_image's reasons -----------------------------------------------------

@pytest.mark.parametrize("make, reason", [
    (lambda p: os.symlink(p, p), "loop of symbolic links"),
    (lambda p: os.symlink(str(p) + ".gone", p), "broken symbolic link"),
    (os.mkfifo, r"FIFO \(named pipe\)"),
    (lambda p: None, "does not exist"),
    (bomb_png, r"too large \(.*decompression bomb"),
])
def test_unreadable_paths_say_why(tmp_path, make, reason):
    path = tmp_path / "picture.png"
    make(path)
    with pytest.raises(ImageError, match=reason) as error:
        load_image(path)
    assert str(path) in str(error.value)


def test_permission_error_is_not_called_corrupt(tmp_path, monkeypatch):
    path = write_picture(tmp_path / "locked.png")

    def refuse(*_, **__):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(Image, "open", refuse)  # root reads files whatever their mode
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path)


# --- The output folder ----------------------------------------------------------

def test_a_second_holder_is_refused_with_the_pid(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom mgc.export import run_folder\n"
         "with run_folder.locked(sys.argv[1]):\n    print('held', flush=True)\n"
         "    time.sleep(60)\n", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(run_folder.RunFolderError,
                           match=rf"locked by another run \(pid {holder.pid}, lock file "):
            with run_folder.locked(str(tmp_path)):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_folder.locked(str(tmp_path)):  # a killed holder leaves no lock
        pass


def test_output_that_is_a_file_or_under_one(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(run_folder.RunFolderError, match="is a file, not a folder"):
        run_folder.check_output_path(str(tmp_path / "file"))
    with pytest.raises(run_folder.RunFolderError, match=r"cannot be created: .*file is a file"):
        run_folder.check_output_path(str(tmp_path / "file" / "out"))


def test_foreign_summary_files_are_refused(tmp_path):
    run_folder.check_summary_files(str(tmp_path), overwrite=False)  # nothing there
    index_page.write_index(str(tmp_path), [], [])
    (tmp_path / "failures.csv").write_text("image,reason\r\na.jpg,no face\r\n")
    run_folder.check_summary_files(str(tmp_path), overwrite=False)  # ours
    (tmp_path / "index.html").write_text("<html>my own page</html>")
    with pytest.raises(run_folder.RunFolderError, match=r"index\.html exists and was not"):
        run_folder.check_summary_files(str(tmp_path), overwrite=False)
    run_folder.check_summary_files(str(tmp_path), overwrite=True)
    (tmp_path / "index.html").unlink()
    (tmp_path / "failures.csv").write_text("name,score\nx,1\n")
    with pytest.raises(run_folder.RunFolderError, match=r"failures\.csv exists and is not"):
        run_folder.check_summary_files(str(tmp_path), overwrite=False)


def test_a_folder_with_only_half_written_markers_is_free(tmp_path):
    folder = tmp_path / "good"
    folder.mkdir()
    (folder / "started.json.tmp").write_text('{"sou')  # killed while writing
    assert run_folder.folder_owner(str(folder)) == ""
    assert run_folder.assign_stems([str(tmp_path / "in" / "good.jpg")], str(tmp_path)) == ["good"]
    (folder / "mine.txt").write_text("someone else's file")
    assert run_folder.folder_owner(str(folder)) is None


def test_stale_reasons_name_the_flag_and_the_file(tmp_path):
    picture = write_picture(tmp_path / "a.png")
    record = dict(source=picture, source_file=run_folder.fingerprint(picture),
                  settings=dict(face_model="ict", steps=560, mirror_average=True), faces=[])
    flag_names = dict(face_model="--face_model", steps="--steps", mirror_average="--mirror_average")
    same = dict(face_model="ict", steps=560, mirror_average=True)
    assert run_folder.stale_reasons(record, same, flag_names) == []
    reasons = run_folder.stale_reasons(record, dict(same, face_model="surrey",
                                                    mirror_average=False), flag_names)
    assert reasons == ["--face_model=ict when it was done, --face_model=surrey now",
                       "--mirror_average=true when it was done, --mirror_average=false now"]
    write_picture(tmp_path / "a.png", size=(9, 6))
    reasons = run_folder.stale_reasons(record, same, flag_names)
    assert len(reasons) == 1 and reasons[0].startswith(f"the picture {picture} changed (")
    old = dict(record, source_file=None)
    assert "no recorded size and hash" in run_folder.stale_reasons(old, same, flag_names)[0]


def test_failure_rows_are_saved_as_they_happen(tmp_path):
    path = str(tmp_path / "failures.csv")
    failures = FailureList(path)
    failures.add("a.jpg", "no face: a.jpg")
    assert list(FailureList(path).rows) == ["a.jpg"]  # on disk already
    failures.add("b,1.jpg", "unreadable: b,1.jpg")
    failures.remove("a.jpg")
    assert dict(FailureList(path).rows) == {"b,1.jpg": "unreadable: b,1.jpg"}
