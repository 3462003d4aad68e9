"""The music generator of the built-in corpus: deterministic, procedurally generated music-like audio for the 10 GTZAN genres.

No real dataset can ship with the framework, so ``dataset=synthetic`` writes one: each genre has its
own tempo range, drum pattern, swing, instruments (timbre, distortion, envelopes), harmony and
dynamics; every track draws its own tempo, key, mix, tone colour and noise, and some tracks borrow
the drums or the lead instrument of another genre, so the task is learnable but not trivial.

Track ``n`` of a genre depends only on ``(seed, genre, n)``: the corpus is the same on every machine
and can be generated in parallel. :mod:`genre.datasets.synthetic` writes the corpus to disk.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

# Each of a track's drums, chord instrument and lead comes from another genre with this probability:
# with 0.15 a cnn3 reached 92 % track accuracy (too easy to compare models); real genres overlap too.
BORROW_PROBABILITY = 0.3

# Chord qualities as semitone offsets from the chord root.
_CHORDS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dom7": (0, 4, 7, 10), "min7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11), "dom9": (0, 4, 7, 10, 14), "power": (0, 7, 12), "sus": (0, 5, 7),
}


@dataclass(frozen=True)
class GenreStyle:
    """What makes a genre recognisable: its rhythm, instruments and harmony."""

    tempo_bpm: tuple[float, float]
    swing: float                       # fraction of a beat pair taken by the first 8th (0.5 = straight)
    kick: str                          # 16-step patterns, 'x' = hit, '.' = rest ('' = no drums)
    snare: str
    hat: str
    hat_open: bool                     # long, open hi-hat (disco) vs closed tick
    progression: tuple[tuple[int, str], ...]   # (degree in semitones, chord quality) per bar
    chord_rhythm: str                  # 16-step pattern of chord stabs; 'sustain' = one per bar
    chord_timbre: str                  # key into _TIMBRES
    bass: str                          # 'root8', 'walk', 'octave', 'sub', 'twobeat', 'offbeat', ''
    lead_timbre: str                   # '' for no melody
    lead_density: float                # probability of a note on each 8th
    scale: tuple[int, ...]
    distortion: float                  # 0 = clean
    noise_db: tuple[float, float]      # background noise level range, dB below signal


# name -> (harmonic amplitudes, attack s, decay time constant s, vibrato Hz)
_TIMBRES = {
    "string": ((1.0, 0.6, 0.45, 0.3, 0.2, 0.12), 0.25, 2.0, 5.5),
    "piano": ((1.0, 0.5, 0.25, 0.12, 0.06), 0.005, 0.6, 0.0),
    "pluck": ((1.0, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1), 0.003, 0.25, 0.0),
    "organ": ((1.0, 0.8, 0.0, 0.6, 0.0, 0.4), 0.02, 4.0, 0.0),
    "pad": ((1.0, 0.3, 0.1), 0.15, 3.0, 0.3),
    "saw": ((1.0, 0.5, 0.33, 0.25, 0.2, 0.17, 0.14, 0.12), 0.01, 1.0, 0.0),
    "sine": ((1.0, 0.15), 0.01, 0.5, 4.5),
    "brass": ((0.6, 1.0, 0.7, 0.5, 0.35, 0.2), 0.05, 0.8, 5.0),
}

# Timbre set "b": the same instrument roles with other sounds (clarinet-like strings, electric piano,
# muted plucks, square leads, ...), other drums and another mix: the compositions of set "a" played by
# another band in another studio (dataset.timbres=b), for "train on a, test on b".
_TIMBRES_B = {
    "string": ((1.0, 0.0, 0.55, 0.0, 0.35, 0.0, 0.2), 0.08, 2.5, 4.0),
    "piano": ((1.0, 0.12, 0.05, 0.0, 0.03), 0.002, 0.9, 0.0),
    "pluck": ((1.0, 0.3, 0.1), 0.002, 0.15, 0.0),
    "organ": ((1.0, 0.2, 0.5, 0.1, 0.3, 0.0, 0.2), 0.03, 3.0, 6.0),
    "pad": ((1.0, 0.5, 0.4, 0.3, 0.2), 0.4, 3.5, 0.0),
    "saw": ((1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14), 0.01, 1.2, 0.0),
    "sine": ((1.0, 0.0, 0.11, 0.0, 0.04), 0.01, 0.5, 0.0),
    "brass": ((0.8, 0.6, 1.0, 0.6, 0.4, 0.3, 0.2), 0.08, 0.9, 5.5),
}


@dataclass(frozen=True)
class TimbreSet:
    """The sounds and the mix a composition is rendered with; changing it draws no other random numbers,
    so a track of set ``b`` is the same composition as the track of set ``a`` with the same index."""

    timbres: dict
    kick_hz: tuple[float, float]      # pitch sweep of the kick: end, start above the end
    snare_hz: float
    lowpass_hz: tuple[float, float]   # the track's tone colour: its draw is mapped into this range
    noise_offset_db: float            # background noise relative to the genre's range (lower: louder)


TIMBRE_SETS = {
    "a": TimbreSet(_TIMBRES, (45.0, 90.0), 190.0, (2500.0, 9000.0), -6.0),
    "b": TimbreSet(_TIMBRES_B, (60.0, 50.0), 240.0, (1500.0, 5000.0), -12.0),
}

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_BLUES = (0, 3, 5, 6, 7, 10)
_PENTA = (0, 2, 4, 7, 9)
_PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)

STYLES: dict[str, GenreStyle] = {
    "blues": GenreStyle((66, 96), 0.66, "x.....x.x.......", "....x.......x...", "x.x.x.x.x.x.x.x.",
                        False, ((0, "dom7"),) * 4 + ((5, "dom7"),) * 2 + ((0, "dom7"),) * 2
                        + ((7, "dom7"), (5, "dom7"), (0, "dom7"), (7, "dom7")),
                        "x.....x.x.....x.", "pluck", "walk", "pluck", 0.45, _BLUES, 0.25, (22, 32)),
    "classical": GenreStyle((56, 96), 0.5, "", "", "", False,
                            ((0, "maj"), (5, "maj"), (7, "dom7"), (0, "maj"), (9, "min"), (2, "min"),
                             (7, "maj"), (0, "maj")),
                            "sustain", "string", "", "string", 0.35, _MAJOR, 0.0, (28, 40)),
    "country": GenreStyle((100, 140), 0.5, "x.......x.......", "....x.......x...", "..x...x...x...x.",
                          False, ((0, "maj"), (0, "maj"), (5, "maj"), (7, "maj")),
                          "x.x.x.x.x.x.x.x.", "pluck", "twobeat", "pluck", 0.55, _MAJOR, 0.0, (25, 35)),
    "disco": GenreStyle((112, 130), 0.5, "x...x...x...x...", "....x.......x...", "..x...x...x...x.",
                        True, ((0, "min7"), (5, "min7"), (3, "maj7"), (7, "min7")),
                        "..x...x...x...x.", "brass", "octave", "pad", 0.3, _MINOR, 0.0, (26, 36)),
    "hiphop": GenreStyle((78, 98), 0.56, "x......x..x.....", "....x.......x...", "x.x.x.x.x.x.x.x.",
                         False, ((0, "min7"), (0, "min7"), (8, "maj7"), (7, "min7")),
                         "x...............", "piano", "sub", "", 0.0, _MINOR, 0.0, (24, 34)),
    "jazz": GenreStyle((100, 180), 0.66, "x...............", "......x.......x.", "x...x.x.x...x.x.",
                       False, ((2, "min7"), (7, "dom9"), (0, "maj7"), (9, "dom7")),
                       "...x.....x....x.", "piano", "walk", "brass", 0.5, _MAJOR, 0.0, (26, 36)),
    "metal": GenreStyle((140, 200), 0.5, "xxxxxxxxxxxxxxxx", "....x.......x...", "x...x...x...x...",
                        True, ((0, "power"), (1, "power"), (0, "power"), (3, "power")),
                        "x.xxx.xxx.xxx.xx", "saw", "root8", "saw", 0.3, _PHRYGIAN, 0.85, (24, 34)),
    "pop": GenreStyle((98, 128), 0.5, "x.......x.......", "....x.......x...", "x.x.x.x.x.x.x.x.",
                      False, ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
                      "x.......x.......", "pad", "root8", "sine", 0.5, _PENTA, 0.0, (28, 38)),
    "reggae": GenreStyle((64, 90), 0.55, "........x.......", "........x.......", "..x...x...x...x.",
                         False, ((0, "min"), (5, "min"), (0, "min"), (7, "min")),
                         "....x.......x...", "organ", "offbeat", "", 0.0, _MINOR, 0.0, (24, 34)),
    "rock": GenreStyle((108, 150), 0.5, "x.......x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x.",
                       False, ((0, "power"), (10, "power"), (5, "power"), (0, "power")),
                       "x.x.x.x.x.x.x.x.", "saw", "root8", "pluck", 0.35, _MINOR, 0.5, (24, 34)),
}


def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


class _Renderer:
    """Renders one track into a float32 buffer; caches note waveforms, which repeat a lot."""

    def __init__(self, rng: np.random.Generator, sample_rate: int, n_samples: int, sounds: TimbreSet):
        self.rng = rng
        self.sounds = sounds
        self.sr = sample_rate
        self.buffer = np.zeros(n_samples, dtype=np.float32)
        self._notes: dict[tuple, np.ndarray] = {}

    def add(self, start_s: float, wave: np.ndarray, gain: float) -> None:
        start = int(start_s * self.sr)
        if start >= self.buffer.size or start < 0:
            return
        end = min(self.buffer.size, start + wave.size)
        self.buffer[start:end] += gain * wave[: end - start]

    def note(self, timbre: str, midi: int, duration_s: float, distortion: float) -> np.ndarray:
        key = (timbre, midi, round(duration_s, 3), distortion)
        if key not in self._notes:
            harmonics, attack, decay, vibrato = self.sounds.timbres[timbre]
            n = max(1, int(duration_s * self.sr))
            t = np.arange(n, dtype=np.float32) / self.sr
            freq = _midi_hz(midi)
            phase = 2 * np.pi * freq * t
            if vibrato:
                phase = phase + 0.004 * freq / vibrato * np.sin(2 * np.pi * vibrato * t) * 2 * np.pi
            wave = np.zeros(n, dtype=np.float32)
            nyquist = self.sr / 2
            for k, amplitude in enumerate(harmonics, start=1):
                if amplitude and k * freq < nyquist:
                    # higher partials die away faster, as in struck and plucked strings
                    partial_decay = np.exp(-t * (k - 1) / (decay * 4)) if timbre in ("pluck", "piano") else 1
                    wave += amplitude * np.sin(k * phase) * partial_decay
            envelope = np.minimum(1.0, t / max(attack, 1e-3)) * np.exp(-t / decay)
            release = min(n, int(0.02 * self.sr))
            envelope[n - release:] *= np.linspace(1, 0, release, dtype=np.float32)
            wave *= envelope
            if distortion:
                drive = 1 + 12 * distortion
                wave = np.tanh(drive * wave) / np.tanh(drive)
            self._notes[key] = (wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)
        return self._notes[key]

    def drum(self, kind: str, open_hat: bool = False) -> np.ndarray:
        key = ("drum", kind, open_hat)
        if key not in self._notes:
            sr = self.sr
            if kind == "kick":
                t = np.arange(int(0.35 * sr)) / sr
                low, sweep = self.sounds.kick_hz
                freq = low + sweep * np.exp(-t / 0.03)
                wave = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12)
            elif kind == "snare":
                t = np.arange(int(0.25 * sr)) / sr
                noise = self.rng.standard_normal(t.size)
                wave = (0.7 * noise * np.exp(-t / 0.06)
                        + 0.5 * np.sin(2 * np.pi * self.sounds.snare_hz * t) * np.exp(-t / 0.04))
            else:
                length = 0.3 if open_hat else 0.05
                t = np.arange(int(length * sr)) / sr
                noise = np.diff(self.rng.standard_normal(t.size + 1))  # differencing = high-pass
                wave = 0.35 * noise * np.exp(-t / (length / 3))
            self._notes[key] = wave.astype(np.float32)
        return self._notes[key]


def _lowpass(signal: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """One-pole low-pass filter via FFT response (cheap tone colour per track)."""
    spectrum = np.fft.rfft(signal)
    freqs = np.fft.rfftfreq(signal.size, 1 / sample_rate)
    spectrum /= np.sqrt(1 + (freqs / cutoff_hz) ** 2)
    return np.fft.irfft(spectrum, n=signal.size).astype(np.float32)


def render_track(genre: str, index: int, seed: int, seconds: float, sample_rate: int,
                 timbres: str = "a") -> np.ndarray:
    """Render track ``index`` of ``genre``: a float32 waveform in [-1, 1], ``seconds`` long, played with
    timbre set ``timbres`` (:data:`TIMBRE_SETS`; the composition does not depend on it)."""
    sounds = TIMBRE_SETS[timbres]
    digest = hashlib.sha256(f"{seed}/{genre}/{index}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    style = STYLES[genre]
    # Some tracks borrow one element of another genre: real genres overlap too.
    others = [g for g in STYLES if g != genre]  # GTZAN's genre order
    drums_style, chord_style, lead_style = (
        STYLES[rng.choice(others)] if rng.random() < BORROW_PROBABILITY else style for _ in range(3))

    n_samples = int(seconds * sample_rate)
    r = _Renderer(rng, sample_rate, n_samples, sounds)
    bpm = rng.uniform(*style.tempo_bpm)
    beat = 60.0 / bpm
    step = beat / 4
    root = int(rng.integers(40, 52))  # E2..D#3: key of the track
    levels = {name: 10 ** (rng.uniform(-6, 3) / 20) for name in ("drums", "chords", "bass", "lead")}
    if rng.random() < 0.1:
        levels[rng.choice(list(levels))] = 0.0  # an instrument sits out
    jitter = 0.004 if genre != "classical" else 0.03

    def step_time(bar: int, i: int) -> float:
        pair, second = divmod(i, 2)
        offset = style.swing * 2 * step if second else 0.0
        return bar * 16 * step + pair * 2 * step + offset + rng.normal(0, jitter)

    n_bars = int(np.ceil(seconds / (16 * step)))
    for bar in range(n_bars):
        degree, quality = style.progression[bar % len(style.progression)]
        chord_root = root + 12 + degree
        if drums_style.kick:
            for i in range(16):
                t = step_time(bar, i)
                velocity = rng.uniform(0.7, 1.0) * levels["drums"]
                if drums_style.kick[i] == "x":
                    r.add(t, r.drum("kick"), 0.9 * velocity)
                if drums_style.snare[i] == "x":
                    r.add(t, r.drum("snare"), 0.6 * velocity)
                if drums_style.hat[i] == "x":
                    r.add(t, r.drum("hat", drums_style.hat_open), 0.4 * velocity)
        chord = [chord_root + offset for offset in _CHORDS[quality]]
        if style.chord_rhythm == "sustain":
            hits, length = [0], 16 * step
        else:
            hits = [i for i, c in enumerate(style.chord_rhythm) if c == "x"]
            length = 2 * step if genre not in ("reggae", "country") else 0.8 * step
        for i in hits:
            for midi in chord:
                wave = r.note(chord_style.chord_timbre, midi, length, chord_style.distortion)
                r.add(step_time(bar, i), wave, 0.25 * levels["chords"] / len(chord) ** 0.5)
        bass_root = chord_root - 24
        bass_notes: list[tuple[int, int, float]] = []  # (step, midi, duration in steps)
        if style.bass == "root8":
            bass_notes = [(i, bass_root, 2) for i in range(0, 16, 2)]
        elif style.bass == "walk":
            walk = [bass_root + style.scale[k % len(style.scale)] for k in rng.integers(0, 7, 4)]
            bass_notes = [(4 * k, midi, 4) for k, midi in enumerate([bass_root] + walk[1:])]
        elif style.bass == "octave":
            bass_notes = [(i, bass_root + 12 * (i // 2 % 2), 2) for i in range(0, 16, 2)]
        elif style.bass == "sub":
            bass_notes = [(0, bass_root - 12 + 12, 12), (10, bass_root, 6)]
        elif style.bass == "twobeat":
            bass_notes = [(0, bass_root, 4), (8, bass_root + 7, 4)]
        elif style.bass == "offbeat":
            bass_notes = [(2, bass_root, 3), (6, bass_root + 7, 2), (10, bass_root, 3), (14, bass_root + 3, 2)]
        for i, midi, dur in bass_notes:
            wave = r.note("sine" if style.bass == "sub" else "pluck", midi, dur * step, 0.0)
            r.add(step_time(bar, i), wave, 0.5 * levels["bass"])
        if lead_style.lead_timbre:
            for i in range(0, 16, 2):
                if rng.random() < lead_style.lead_density:
                    midi = root + 24 + lead_style.scale[int(rng.integers(len(lead_style.scale)))]
                    wave = r.note(lead_style.lead_timbre, midi, 2 * step * rng.uniform(0.8, 2.0),
                                  lead_style.distortion * 0.5)
                    r.add(step_time(bar, i), wave, 0.3 * levels["lead"])

    signal = r.buffer
    if genre == "classical":  # phrasing: slow swells in loudness
        t = np.arange(n_samples) / sample_rate
        signal *= 0.6 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(6, 14) + rng.uniform(0, 6.3))
    colour = rng.uniform(0.0, 1.0)    # one draw whatever the set: the mix maps it into its own range
    low, high = sounds.lowpass_hz
    signal = _lowpass(signal, low + colour * (high - low), sample_rate)
    signal /= np.abs(signal).max() + 1e-9
    noise_db = rng.uniform(*style.noise_db) + sounds.noise_offset_db
    signal += rng.standard_normal(n_samples).astype(np.float32) * 10 ** (-noise_db / 20) * signal.std()
    signal *= 10 ** (rng.uniform(-12, -1) / 20) / (np.abs(signal).max() + 1e-9)
    return signal.astype(np.float32)
