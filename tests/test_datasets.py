"""Dataset loaders on fixtures written in the real on-disk formats (shared/reference/FORMATS.md)."""
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_tone
from genre.datasets import fma, folder, gtzan
from genre.datasets.gtzan import GTZAN_GENRES, gtzan_filtered_lists
from genre.runtime.errors import DatasetError

# FORMATS.md: per genre (train/valid/test) of the fault-filtered split
FILTERED_COUNTS = {"blues": (46, 23, 31), "classical": (48, 20, 31), "country": (45, 23, 30),
                   "disco": (42, 22, 29), "hiphop": (47, 18, 27), "jazz": (43, 17, 27), "metal": (44, 20, 27),
                   "pop": (41, 13, 30), "reggae": (43, 17, 26), "rock": (44, 24, 32)}


def gtzan_tree(root: Path, layout: str, ext: str, genres=GTZAN_GENRES, per_genre=100) -> Path:
    """GTZAN's file names; the index opens no audio, so empty files stand in for the clips."""
    for genre in genres:
        (root / layout / genre).mkdir(parents=True, exist_ok=True)
        for n in range(per_genre):
            (root / layout / genre / f"{genre}.{n:05d}.{ext}").touch()
    return root


def test_filtered_lists_are_the_published_split():
    lists = gtzan_filtered_lists()
    assert [len(lists[s]) for s in ("train", "val", "test")] == [443, 197, 290]
    for genre, counts in FILTERED_COUNTS.items():
        assert tuple(sum(i.startswith(genre + ".") for i in lists[s]) for s in ("train", "val", "test")) == counts


@pytest.mark.parametrize("layout, ext", [("genres", "au"), ("genres", "wav"), ("Data/genres_original", "wav"),
                                          ("genres_original", "wav")])
def test_gtzan_copies_are_found_without_naming_the_layout(tmp_path, layout, ext):
    index = gtzan.build(str(gtzan_tree(tmp_path, layout, ext)), split="filtered")
    assert index.genres == list(GTZAN_GENRES)
    assert Counter(t.split for t in index.tracks) == {"train": 443, "val": 197, "test": 290}
    assert all(t.path.suffix == f".{ext}" for t in index.tracks)
    assert index.split_protocol.startswith("gtzan-fault-filtered")
    assert index.skipped == []


def test_ids_named_by_the_filtered_split_but_missing_are_reported_not_fatal(tmp_path):
    root = gtzan_tree(tmp_path, "Data/genres_original", "wav")
    (root / "Data/genres_original/jazz/jazz.00054.wav").unlink()   # in the filtered training list
    index = gtzan.build(str(root), split="filtered")
    assert len(index.tracks) == 929
    [skipped] = index.skipped
    assert skipped.path.endswith("jazz.00054") and "filtered train list" in skipped.reason


def test_genre_subsets_keep_their_order_and_the_filtered_split(tmp_path):
    index = gtzan.build(str(gtzan_tree(tmp_path, "genres", "au")), split="filtered", genres=["metal", "classical"])
    assert index.genres == ["metal", "classical"]
    assert Counter((t.genre, t.split) for t in index.tracks) == {
        ("metal", "train"): 44, ("metal", "val"): 20, ("metal", "test"): 27,
        ("classical", "train"): 48, ("classical", "val"): 20, ("classical", "test"): 31}


def test_kfold_puts_every_track_in_exactly_one_test_fold(tmp_path):
    root = str(gtzan_tree(tmp_path, "genres", "au", per_genre=20))
    tests, seen_protocols = Counter(), set()
    for fold in range(10):
        index = gtzan.build(root, split="kfold", folds=10, fold=fold, split_seed=3)
        splits = Counter(t.split for t in index.tracks)
        assert splits == {"train": 160, "val": 20, "test": 20}
        tests.update(t.track_id for t in index.tracks if t.split == "test")
        seen_protocols.add(index.split_protocol)
    assert len(tests) == 200 and set(tests.values()) == {1}
    assert len(seen_protocols) == 10 and "test_fold=3" in "".join(seen_protocols)


def test_random_split_is_stratified_seeded_and_by_track(tmp_path):
    root = str(gtzan_tree(tmp_path, "genres", "wav", per_genre=10))
    first = gtzan.build(root, split="random", fractions={"train": 0.6, "val": 0.2, "test": 0.2}, split_seed=1)
    again = gtzan.build(root, split="random", fractions={"train": 0.6, "val": 0.2, "test": 0.2}, split_seed=1)
    other = gtzan.build(root, split="random", fractions={"train": 0.6, "val": 0.2, "test": 0.2}, split_seed=2)
    assert first.tracks == again.tracks and first.tracks != other.tracks
    assert Counter((t.genre, t.split) for t in first.tracks)[("rock", "test")] == 2


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", r"does not exist.*Kaggle"),
    (lambda root: (root / "empty").mkdir() or root / "empty", r"has no GTZAN tracks.*genres_original"),
])
def test_gtzan_wrong_root_says_what_was_expected(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        gtzan.build(str(make(tmp_path)), split="filtered")


def test_unknown_split_and_genre_are_clear_errors(tmp_path):
    root = str(gtzan_tree(tmp_path, "genres", "au", per_genre=3))
    with pytest.raises(DatasetError, match=r"dataset.split='official'.*filtered"):
        gtzan.build(root, split="official")
    with pytest.raises(DatasetError, match=r"\['polka'\].*does not have"):
        gtzan.build(root, split="filtered", genres=["polka", "rock"])


# ---- FMA ----------------------------------------------------------------------------------------

TRACKS_CSV_HEADER = (
    ",album,artist,set,set,track,track,track,track\n"
    ",title,name,split,subset,duration,genre_top,genres,genres_all\n"
    "track_id,,,,,,,,\n")


def fma_tree(root: Path, rows: list[tuple], audio: dict[int, float]) -> Path:
    """tracks.csv with FMA's three header lines; ``audio``: track id -> seconds of MP3 (0 = empty file)."""
    (root / "fma_metadata").mkdir(parents=True)
    lines = [f'{tid},Album {tid},Artist {tid % 3},{split},{subset},30,{genre},"[1]","[1, 2]"'
             for tid, split, subset, genre in rows]
    (root / "fma_metadata" / "tracks.csv").write_text(TRACKS_CSV_HEADER + "\n".join(lines) + "\n")
    (root / "fma_small").mkdir()
    for tid, seconds in audio.items():
        path = root / "fma_small" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3"
        if seconds:
            write_tone(path, seconds, sample_rate=44100, channels=2)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return root


FMA_ROWS = [(2, "training", "small", "Hip-Hop"), (5, "training", "small", "Hip-Hop"),
            (10, "validation", "small", "Pop"), (140, "test", "small", "Rock"),
            (141, "training", "small", "Rock"), (98565, "training", "small", "Pop"),
            (3, "training", "medium", "Hip-Hop"), (20, "test", "large", ""), (21, "test", "medium", "Folk")]


def test_fma_subset_labels_and_official_split(tmp_path):
    root = fma_tree(tmp_path, FMA_ROWS, {})
    small = fma.build(str(root), subset="small")
    assert {t.track_id: (t.genre, t.split) for t in small.tracks} == {
        "000002": ("Hip-Hop", "train"), "000005": ("Hip-Hop", "train"), "000010": ("Pop", "val"),
        "000140": ("Rock", "test"), "000141": ("Rock", "train"), "098565": ("Pop", "train")}
    assert str(small.tracks[0].path).endswith("fma_small/000/000002.mp3")
    assert [t for t in small.tracks if t.track_id == "098565"][0].path.parts[-2:] == ("098", "098565.mp3")
    assert small.split_protocol == "fma-official-small(artist-conditional)"
    medium = fma.build(str(root), subset="medium", audio_dir=str(root / "fma_small"))
    assert {t.track_id for t in medium.tracks} == {t.track_id for t in small.tracks} | {"000003", "000021"}
    large = fma.build(str(root), subset="large", audio_dir=str(root / "fma_small"))
    assert "000020" not in {t.track_id for t in large.tracks}  # no top genre: dropped


def test_fma_wrong_header_missing_metadata_and_missing_audio_are_clear_errors(tmp_path):
    root = fma_tree(tmp_path / "a", FMA_ROWS, {})
    (root / "fma_metadata" / "tracks.csv").write_text("track_id,genre\n2,Hip-Hop\n")
    with pytest.raises(DatasetError, match=r"not FMA's tracks.csv"):
        fma.build(str(root))
    (tmp_path / "b").mkdir()
    with pytest.raises(DatasetError, match=r"fma_metadata/tracks.csv.*mdeff/fma"):
        fma.build(str(tmp_path / "b"))
    root = fma_tree(tmp_path / "c", FMA_ROWS, {})
    (root / "fma_small").rmdir()
    with pytest.raises(DatasetError, match=r"no FMA audio folder.*fma_small/000/000002.mp3"):
        fma.build(str(root))


# ---- folder -------------------------------------------------------------------------------------

def test_folder_takes_any_format_rate_and_channel_count(tmp_path):
    write_tone(tmp_path / "jazz" / "a.wav", 1.0, 44100, channels=2)
    write_tone(tmp_path / "jazz" / "live" / "b.flac", 1.0, 16000)
    write_tone(tmp_path / "jazz" / "c.ogg", 1.0, 22050)
    write_tone(tmp_path / "metal" / "d.mp3", 1.0, 48000, channels=2)
    write_tone(tmp_path / "metal" / "e.au", 1.0, 8000)
    write_tone(tmp_path / "metal" / "f.wav", 1.0, 8000)
    (tmp_path / "metal" / "notes.txt").write_text("not audio")
    index = folder.build(str(tmp_path), split="random", fractions={"train": 0.34, "val": 0.33, "test": 0.33})
    assert index.genres == ["jazz", "metal"]
    assert sorted(t.track_id for t in index.tracks) == ["jazz/a", "jazz/c", "jazz/live/b", "metal/d", "metal/e",
                                                        "metal/f"]
    assert Counter(t.split for t in index.tracks) == {"train": 2, "val": 2, "test": 2}
    with pytest.raises(DatasetError, match="one sub-folder per genre"):
        folder.build(str(tmp_path / "jazz" / "live"), split="random")


# ---- artist-conditional split ---------------------------------------------------------------------

def artist_tracks(n_artists=30, seed=0):
    """Artists with 1 to 8 tracks each, mostly of one genre, some of two."""
    import numpy as np

    from genre.data.index import Track

    rng = np.random.default_rng(seed)
    genres = ["Jazz", "Rock", "Rap"]
    tracks = []
    for a in range(n_artists):
        main = genres[a % 3]
        for k in range(int(rng.integers(1, 9))):
            genre = genres[(a + 1) % 3] if k == 4 else main
            tracks.append(Track(f"a{a:02d}t{k}", Path(f"/x/a{a}/{k}.mp3"), genre, artist=f"Artist {a}"))
    return tracks


def test_artist_split_keeps_each_artist_on_one_side_near_the_fractions():
    from genre.data.splits import apply_split

    tracks = artist_tracks()
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    assigned, protocol = apply_split(tracks, "artist", "fma", fractions=fractions, split_seed=4)
    assert sorted(t.track_id for t in assigned) == sorted(t.track_id for t in tracks)  # each track once
    sides = {}
    for t in assigned:
        sides.setdefault(t.artist, set()).add(t.split)
    assert all(len(s) == 1 for s in sides.values())           # no artist on two sides
    counts = Counter(t.split for t in assigned)
    for split, share in fractions.items():                  # whole artists: near, not exactly, the share
        assert abs(counts[split] / len(assigned) - share) < 0.08, counts
    assert protocol == "random-stratified-by-artist(train=0.6,val=0.2,test=0.2,seed=4)"
    again, _ = apply_split(list(reversed(tracks)), "artist", "fma", fractions=fractions, split_seed=4)
    other, _ = apply_split(tracks, "artist", "fma", fractions=fractions, split_seed=5)
    split_of = lambda result: {t.track_id: t.split for t in result}  # noqa: E731
    assert split_of(again) == split_of(assigned) and split_of(other) != split_of(assigned)


def test_artist_split_needs_artists(tmp_path):
    root = str(gtzan_tree(tmp_path, "genres", "au", per_genre=3))
    with pytest.raises(DatasetError, match=r"split=artist: 30 of 30 tracks of gtzan have no artist"):
        gtzan.build(root, split="artist")
    with pytest.raises(DatasetError, match=r"offers \['artist', 'filtered', 'kfold', 'random'\]"):
        gtzan.build(root, split="by-album")


def test_fma_artist_split_from_tracks_csv(tmp_path):
    root = fma_tree(tmp_path, FMA_ROWS, {})
    index = fma.build(str(root), subset="medium", audio_dir=str(root / "fma_small"), split="artist",
                fractions={"train": 0.4, "val": 0.3, "test": 0.3})
    sides = {}
    for t in index.tracks:
        sides.setdefault(t.artist, set()).add(t.split)
    assert len(sides) == 3 and all(len(s) == 1 for s in sides.values())
    assert index.split_protocol.startswith("random-stratified-by-artist(")


def test_a_root_with_spaces_dashes_and_equals_signs_works_quoted_as_the_readme_says(tmp_path):
    """``python train.py dataset=folder "dataset.root='/data/My Music – 2024=best'"``"""
    from genre.assembly.build import build_index, compose_config

    root = tmp_path / "My Music – 2024=best"
    for genre in ("jazz", "rock"):
        for n in range(3):
            write_tone(root / genre / f"{n}.wav", 1.0, 8000)
    cfg = compose_config("train", ["dataset=folder", f"dataset.root='{root}'"])
    assert cfg.dataset.root == str(root)
    assert len(build_index(cfg.dataset).tracks) == 6


# ISMIR2004: (part, original-genre folder, class, file name); development is flat and anonymised
ISMIR_TRACKS = [("training", "jazz", "jazz_blues", "a1/al1/01-take.mp3"),
                ("training", "blues", "jazz_blues", "a2/al1/02-river.mp3"),
                ("training", "punk", "metal_punk", "a3/al2/01-loud.mp3"),
                ("training", "classical", "classical", "a4/al1/03-adagio.mp3"),
                ("training", "pop", "rock_pop", "a5/al3/04-hit.mp3"),
                ("development", None, "classical", "artist_1_album_1_track_1.mp3"),
                ("development", None, "metal_punk", "artist_2_album_1_track_3.mp3"),
                ("development", None, "jazz_blues", "artist_3_album_2_track_2.mp3"),
                ("development", None, "rock_pop", "artist_5_album_1_track_1.mp3"),
                ("evaluation", "metal", "metal_punk", "a6/al1/05-riff.mp3"),
                ("evaluation", "rock", "rock_pop", "a7/al1/01-road.mp3"),
                ("evaluation", "classical", "classical", "a8/al2/02-fugue.mp3"),
                ("evaluation", "jazz", "jazz_blues", "a9/al1/07-swing.mp3")]


def ismir2004_tree(root: Path, tracks=ISMIR_TRACKS, seconds: float = 4.0, missing: tuple[str, ...] = ()) -> Path:
    """The collection's layout: audio/<part>/<original genre>/... (development flat), labels only in
    metadata/{training,evaluation}/tracklist.csv and metadata/development/ground_truth.csv."""
    lists = {"training": ["class,artist,album,track,track number,file path"],
             "development": [],
             "evaluation": ["class,artist,album,track,track number,file path,magnatune id"]}
    for k, (part, folder_name, label, name) in enumerate(tracks):
        relative = f"{folder_name}/{name}" if folder_name else name
        if name not in missing:
            write_tone(root / "audio" / part / relative, seconds, frequency=200 + 40 * k)
        if part == "development":
            lists[part].append(f'"{relative}","{label}"')
        else:
            artist, album, title = name.split("/")
            row = f"{label},{artist},{album},{title[3:-4]},{title[:2]},{relative}"
            lists[part].append(row + (f",{1000 + k}" if part == "evaluation" else ""))
    for part, rows in lists.items():
        target = root / "metadata" / part / ("ground_truth.csv" if part == "development" else "tracklist.csv")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(rows) + "\n")
    return root


def test_ismir2004_labels_come_from_the_tracklists_with_the_official_split(tmp_path):
    from genre.datasets import ismir2004

    root = ismir2004_tree(tmp_path / "ismir", missing=("a9/al1/07-swing.mp3",))
    index = ismir2004.build(str(root))
    by_file = {t.path.name: t for t in index.tracks}
    # folders of the original genres (punk, blues, pop) are not labels; the tracklist's classes are
    assert by_file["01-loud.mp3"].genre == "metal_punk" and by_file["02-river.mp3"].genre == "jazz_blues"
    assert by_file["04-hit.mp3"].genre == "rock_pop"
    assert by_file["artist_2_album_1_track_3.mp3"].genre == "metal_punk"       # flat, from ground_truth.csv
    assert index.genres == ["classical", "jazz_blues", "metal_punk", "rock_pop"]
    assert Counter(t.split for t in index.tracks) == {"train": 5, "val": 4, "test": 3}
    assert {t.split for t in index.tracks if "/evaluation/" in str(t.path)} == {"test"}
    assert index.split_protocol.startswith("ismir2004-official")
    [skipped] = index.skipped                                                 # listed, not on disk: reported
    assert skipped.path.endswith("07-swing.mp3") and "evaluation" in skipped.reason


def test_ismir2004_without_its_tracklists_or_with_another_split_says_what_to_do(tmp_path):
    from genre.datasets import ismir2004

    root = ismir2004_tree(tmp_path / "ismir")
    with pytest.raises(DatasetError, match="split=official"):
        ismir2004.build(str(root), split="random")
    (root / "metadata" / "development" / "ground_truth.csv").unlink()
    with pytest.raises(DatasetError, match=r"ground_truth.csv missing.*not from folder names"):
        ismir2004.build(str(root))


def test_no_tracklist_or_index_row_reads_outside_the_dataset_root(tmp_path):
    """An ISMIR2004 row ../../../outside/x.mp3 was read from outside the root; an FMA id ../../etc/passwd
    gave a traceback."""
    from genre.datasets import ismir2004

    root = ismir2004_tree(tmp_path / "ismir")
    write_tone(tmp_path / "outside" / "x.mp3", 4.0)                         # a real file, out of bounds
    tracklist = root / "metadata" / "training" / "tracklist.csv"
    tracklist.write_text(tracklist.read_text() + "jazz_blues,a,b,x,01,../../../outside/x.mp3\n")
    index = ismir2004.build(str(root))
    assert all(tmp_path / "outside" not in t.path.resolve().parents for t in index.tracks)
    [refused] = [s for s in index.skipped if "outside" in s.path]
    assert "leads outside dataset.root: not read" in refused.reason

    music = tmp_path / "music"
    for genre in ("jazz", "rock"):
        for i in range(2):
            write_tone(music / genre / f"{genre}{i}.wav", 2.0)
    (music / "rock" / "borrowed.mp3").symlink_to(tmp_path / "outside" / "x.mp3")
    collection = folder.build(str(music), split="random", fractions={"train": 0.5, "val": 0.0, "test": 0.5})
    assert sorted(t.path.name for t in collection.tracks) == ["jazz0.wav", "jazz1.wav", "rock0.wav", "rock1.wav"]
    [link] = collection.skipped
    assert link.path.endswith("borrowed.mp3") and "leading outside dataset.root" in link.reason

    fma_root = fma_tree(tmp_path / "fma", FMA_ROWS, {})
    tracks_csv = fma_root / "fma_metadata" / "tracks.csv"
    tracks_csv.write_text(tracks_csv.read_text() + '../../etc/passwd,A,B,training,small,30,Rock,"[1]","[1]"\n')
    with pytest.raises(DatasetError, match=r"tracks.csv: track_id '../../etc/passwd' is not a number"):
        fma.build(str(fma_root))
