"""Garbage audio is never trained on in silence: a file must be what its extension says, carry sound over
the excerpt used, and hold as much audio as its container declares (issue: random bytes named .au
became 25 s of u-law noise; truncated files were padded and trained on)."""
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import write_tone
from genre.data.audio import load_audio
from genre.data.cache import build_audio_cache
from genre.data.index import Track
from genre.datasets import folder
from genre.runtime.errors import AudioDecodeError

SR = 8000


def truncate(path, share=0.6):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * share)])
    return path


@pytest.mark.parametrize("suffix", [".au", ".wav", ".flac", ".ogg", ".mp3"])
def test_random_bytes_under_an_audio_name_are_refused(tmp_path, suffix):
    path = tmp_path / f"blues.00001{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(400_000))
    with pytest.raises(AudioDecodeError, match=rf"not a {suffix[1:].upper()} file") as refused:
        load_audio(path, SR)
    assert "possibly a pipe" not in str(refused.value)


@pytest.mark.parametrize("suffix, share", [(".wav", 0.6), (".au", 0.6), (".mp3", 0.6), (".ogg", 0.95),
                                           (".flac", 0.9)])
def test_truncated_files_are_refused_even_when_what_is_left_is_long(tmp_path, suffix, share):
    """What is left (several seconds) is longer than a clip; the header says it was 20 s."""
    path = truncate(write_tone(tmp_path / f"t{suffix}", 20.0, 22050), share)
    with pytest.raises(AudioDecodeError, match="truncated"):
        load_audio(path, SR)


@pytest.mark.parametrize("suffix", [".wav", ".au", ".flac", ".ogg", ".mp3"])
def test_complete_files_of_every_format_still_load(tmp_path, suffix):
    path = write_tone(tmp_path / f"t{suffix}", 20.0, 22050, channels=2)
    assert abs(load_audio(path, SR).shape[0] - 20 * SR) < SR * 0.1


def test_a_file_that_exists_but_cannot_be_decoded_is_not_called_missing(tmp_path):
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3" + np.random.default_rng(1).bytes(200_000))   # a tag, then garbage
    with pytest.raises(AudioDecodeError) as refused:
        load_audio(path, SR)
    assert "unreadable" in str(refused.value) and "possibly a pipe" not in str(refused.value) \
        and "does not exist" not in str(refused.value)


@pytest.mark.parametrize("decoder", ["raises", "returns no samples"])
def test_a_damaged_file_is_called_damaged_whatever_the_decoder_version(tmp_path, monkeypatch, decoder):
    """soundfile 0.13 raises for an ID3 tag followed by garbage; some 0.14 builds return 0 samples, and the
    file was then called "empty audio (0 samples)". Both decoders must lead to the same message, on the
    whole-file and the streaming path alike."""
    import genre.data.audio as audio

    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3" + np.random.default_rng(1).bytes(200_000))
    if decoder == "raises":
        def fake_read(*args, **kwargs):
            raise sf.LibsndfileError(0, prefix="Error opening 'song.mp3': ")
        monkeypatch.setattr(audio.sf, "read", fake_read)
    else:
        monkeypatch.setattr(audio.sf, "read", lambda *a, **k: (np.zeros((0, 1), dtype=np.float32), 44100))
        monkeypatch.setattr(audio.sf, "info", lambda *a, **k: type("Info", (), {"samplerate": 44100,
                                                                                "channels": 1})())
        monkeypatch.setattr(audio.sf, "blocks", lambda *a, **k: iter(()))
    monkeypatch.setattr(audio.librosa, "load", lambda *a, **k: (np.zeros(0, dtype=np.float32), 44100))
    readers = [lambda: load_audio(path, SR)]
    if decoder == "returns no samples":
        readers.append(lambda: list(audio.stream_audio(path, SR)))
    for read in readers:
        with pytest.raises(AudioDecodeError) as refused:
            read()
        message = str(refused.value)
        assert "song.mp3" in message and "damaged" in message and "unreadable" in message, message
        assert "empty audio" not in message


def test_a_wav_header_with_no_frames_is_called_empty(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioDecodeError, match="empty audio"):
        load_audio(path, SR)


def test_silent_and_garbage_files_are_skipped_counted_and_reported(tmp_path, caplog):
    good = write_tone(tmp_path / "good.wav", 4.0, SR)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(4 * SR), SR)
    whisper = tmp_path / "whisper.wav"      # -80 dBFS: a level that carries nothing
    sf.write(str(whisper), 1e-4 * np.sin(np.arange(4 * SR) * 0.3), SR)
    quiet_then_loud = tmp_path / "late.wav"  # silent over the 3 s used, loud afterwards
    sf.write(str(quiet_then_loud), np.concatenate([np.zeros(3 * SR), 0.5 * np.ones(SR)]), SR)
    noise_au = tmp_path / "noise.au"
    noise_au.write_bytes(os.urandom(200_000))
    tracks = [Track(p.stem, p, "blues") for p in (good, silent, whisper, quiet_then_loud, noise_au)]
    with caplog.at_level(logging.WARNING):
        built = build_audio_cache(tracks, SR, 3 * SR, tmp_path / "cache", num_workers=1, min_seconds=1.0)
    assert built.track_ids == ["good"]
    reasons = {os.path.basename(s.path): s.reason for s in built.skipped}
    assert set(reasons) == {"silent.wav", "whisper.wav", "late.wav", "noise.au"}
    assert all(reasons[name].startswith("silent") for name in ("silent.wav", "whisper.wav", "late.wav"))
    assert "not a AU file" in reasons["noise.au"]
    assert "4 of 5 files could not be used" in caplog.text


def test_an_empty_genre_folder_is_named_in_a_warning(tmp_path, caplog):
    for genre in ("jazz", "rock"):
        write_tone(tmp_path / genre / "a.wav", 1.0, SR)
        write_tone(tmp_path / genre / "b.wav", 1.0, SR)
        write_tone(tmp_path / genre / "c.wav", 1.0, SR)
    (tmp_path / "polka").mkdir()
    (tmp_path / "polka" / "notes.txt").write_text("no audio here")
    with caplog.at_level(logging.WARNING):
        index = folder.build(str(tmp_path), split="random", fractions={"train": 0.34, "val": 0.33, "test": 0.33})
    assert index.genres == ["jazz", "rock"]
    assert "polka" in caplog.text and "no audio" in caplog.text


def test_an_id3_comment_saying_info_does_not_make_a_complete_mp3_truncated(tmp_path):
    """Only a Xing/Info/VBRI header in the first frame declares a length; the word in a tag does not."""
    plain = write_tone(tmp_path / "plain.mp3", 8.0, 22050)
    data = plain.read_bytes()
    tagged = tmp_path / "tagged.mp3"
    comment = b"COMM" + (20).to_bytes(4, "big") + b"\x00\x00" + b"\x00eng\x00Info: live take!"
    tag = b"ID3\x03\x00\x00" + bytes([0, 0, 0, len(comment)]) + comment
    tagged.write_bytes(tag + data)
    assert abs(load_audio(tagged, SR).shape[0] - 8 * SR) < 0.1 * SR
    truncated = tmp_path / "tagged_truncated.mp3"
    truncated.write_bytes(tag + data[:int(len(data) * 0.6)])
    with pytest.raises(AudioDecodeError, match="truncated"):   # the Xing header after the tag still counts
        load_audio(truncated, SR)


def test_a_directory_a_dangling_or_looping_link_and_a_url_are_each_named_for_what_they_are(tmp_path):
    """All three said "file not found"."""
    from genre.data.audio import load_audio
    from genre.runtime.errors import AudioDecodeError

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere.wav")
    for given, reason in ((tmp_path, "a directory, not an audio file"),
                          (tmp_path / "loop", "a symbolic link that leads nowhere"),
                          (tmp_path / "gone", "a symbolic link that leads nowhere"),
                          ("https://example.com/song.mp3", "a URL, not a file: download it first"),
                          (tmp_path / "absent.wav", "file not found")):
        with pytest.raises(AudioDecodeError, match=reason):
            load_audio(given, 22050)


def test_a_file_that_is_not_audio_is_described_in_words_not_a_bytes_repr(tmp_path):
    """The message showed a Python bytes repr: ``starts with b'hell'`` (issue 30)."""
    text = tmp_path / "notes.wav"
    text.write_bytes(b"hello, this is a text file" * 100)
    with pytest.raises(AudioDecodeError) as refused:
        load_audio(text, SR)
    assert 'it starts with "hell"' in str(refused.value) and "b'" not in str(refused.value)
    binary = tmp_path / "noise.flac"
    binary.write_bytes(bytes([0, 1, 2, 250]) * 100)
    with pytest.raises(AudioDecodeError, match="it starts with 00 01 02 fa"):
        load_audio(binary, SR)
