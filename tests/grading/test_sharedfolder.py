"""The checker's folders in the shared folder: new, with random names, and no link it did not make."""

from __future__ import annotations

import pytest

from doubleedge.grading.sharedfolder import LINK_NOTE, PlantedLink, fresh_folder, refuse_links


def test_fresh_folders_are_new_and_unpredictable(tmp_path):
    first, second = fresh_folder(tmp_path, "cases-"), fresh_folder(tmp_path, "cases-")
    assert first != second and first.parent == second.parent == tmp_path
    assert first.name.startswith("cases-") and not any(first.iterdir())
    assert fresh_folder(tmp_path / "made" / "here", "marker-").parent == tmp_path / "made" / "here"


def test_a_parent_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "shared").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PlantedLink, match="does not follow links"):
        fresh_folder(tmp_path / "shared", "cases-")
    assert not any((tmp_path / "elsewhere").iterdir())


def test_a_planted_link_is_found_and_never_followed(tmp_path):
    folder = fresh_folder(tmp_path, "templates-")
    (folder / "mirror").mkdir()
    made = folder / "publisher"
    made.symlink_to(tmp_path)  # the checker's own link is allowed
    refuse_links(folder, made=[made])
    (folder / "mirror" / "model.gguf").symlink_to(tmp_path / "outside")
    with pytest.raises(PlantedLink) as raised:
        refuse_links(folder, made=[made])
    assert str(raised.value) == LINK_NOTE
    (folder / "mirror" / "model.gguf").unlink()
    (folder / "loop").symlink_to(folder)  # a linked folder is seen, not walked into
    with pytest.raises(PlantedLink):
        refuse_links(folder, made=[made])
