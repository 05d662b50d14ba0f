"""Crowd beds: reproducible, exact length and level, non-stationary, rhythmic clapping at the drawn tempo,
a sing-along that follows the music, loggable specs and clear errors. Speech is real espeak-ng output."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from resonance.simulate import crowd, mix, phone, voices

from conftest import music_clip, scramble_global_rngs

SR = 16000
CROWD = dict(voices=(8, 12), clips_per_voice=4, gap_s=(0.1, 0.8), voice_gain_db=(-6.0, 0.0),
             resample=(0.85, 1.2), swells_per_min=(6.0, 10.0), swell_s=(2.0, 8.0), swell_attack_frac=(0.2, 0.6),
             event_layers=(1, 3), event_gain_db=(-3.0, 3.0), rhythmic_prob=0.5, clap_bpm=(90.0, 140.0),
             clappers=(10, 30), clap_jitter_s=(0.005, 0.02), clap_fraction=(0.4, 0.9), bursts_per_min=(2.0, 4.0),
             burst_s=(3.0, 8.0), burst_attack_frac=(0.05, 0.2), singalong_copies=(2, 4),
             singalong_delay_s=(0.02, 0.08), singalong_detune_cents=(5.0, 25.0), singalong_rate_hz=(0.1, 0.4),
             component_db=dict(babble=(0.0, 0.0), cheer=(-3.0, 3.0), clap=(-3.0, 3.0), singalong=(-9.0, -3.0)))
TEXTS = ["Hello there, how are you doing tonight?", "I can't believe they opened with that song.",
         "Where is the bar? I really need a drink.", "They were even better when I saw them last year.",
         "Did you hear that guitar solo? Incredible.", "Let's try to get a little closer to the stage."]


def crowd_kwargs(**overrides: object) -> dict:
    return {**CROWD, **overrides}


def noise_bursts(seed: int, seconds: float, per_s: float, decay_s: float) -> np.ndarray:
    """Stand-in applause (decay_s ~ 10 ms: claps) or cheer (decay_s ~ 0.3 s): decaying noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros(n)
    for start in rng.uniform(0.0, seconds, size=int(per_s * seconds)):
        i = int(start * SR)
        m = min(int(5 * decay_s * SR), n - i)
        out[i:i + m] += rng.uniform(0.3, 1.0) * rng.standard_normal(m) * np.exp(-np.arange(m) / (decay_s * SR))
    return (0.1 * out * np.hanning(n)).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no real speech to build babble from")
    speech = voices.synth_voices(TEXTS, ["en-us", "en-gb", "de", "nl", "cs"], SR, (140, 200), (30, 70),
                                 np.random.default_rng(0))
    cheer = [noise_bursts(10 + i, 3.0, 30.0, 0.3) for i in range(3)]
    applause = [noise_bursts(20 + i, 2.0, 40.0, 0.01) for i in range(3)]
    return {"speech": speech, "cheer": cheer, "applause": applause}


def draw(clips: dict, seed: int, length_s: float, **overrides: object) -> crowd.BedSpec:
    return crowd.sample_bed(np.random.default_rng(seed), len(clips["speech"]), len(clips["cheer"]),
                            len(clips["applause"]), length_s, **crowd_kwargs(**overrides))


def test_synth_voices_are_real_speech_at_sr(clips: dict) -> None:
    for clip in clips["speech"]:
        assert clip.dtype == np.float32 and clip.ndim == 1 and np.all(np.isfinite(clip))
        assert 1.0 < clip.size / SR < 6.0 and mix.rms_db(clip) > -40.0
    scramble_global_rngs(4)
    again = voices.synth_voices(TEXTS[:2], ["en-us", "en-gb", "de", "nl", "cs"], SR, (140, 200), (30, 70),
                                np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(again, clips["speech"][:2]))  # same draws, same audio


def test_synth_voices_errors(clips: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="empty text"):
        voices.synth_voices(["fine", "  "], ["en-us"], SR, (150, 150), (50, 50), rng)
    with pytest.raises(RuntimeError, match="nosuchvoice"):
        voices.synth_voices(["hello"], ["nosuchvoice"], SR, (150, 150), (50, 50), rng)
    monkeypatch.setattr("resonance.audio.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        voices.synth_voices(["hello"], ["en-us"], SR, (150, 150), (50, 50), rng)


def test_same_seed_gives_bit_identical_bed(clips: dict) -> None:
    music = music_clip(10.0, seed=1, sr=SR)
    specs, beds = [], []
    for noise in range(2):
        scramble_global_rngs(noise)  # the draws come from the generator passed in, never from global state
        specs.append(draw(clips, 3, 10.0))
        beds.append(crowd.render_bed(specs[-1], **clips, sr=SR, music=music))
    assert specs[0] == specs[1] and draw(clips, 4, 10.0) != specs[0]
    assert np.array_equal(beds[0], beds[1])


@pytest.mark.parametrize("seed, length_s", [(0, 7.3), (1, 12.0), (2, 9.99)])
def test_bed_has_exact_length_is_finite_and_at_target_level(clips: dict, seed: int, length_s: float) -> None:
    music = music_clip(5.0, seed=seed, sr=SR)  # shorter than the bed: looped
    for mus in (music, None):
        bed = crowd.render_bed(draw(clips, seed, length_s), **clips, sr=SR, music=mus)
        assert bed.dtype == np.float32 and bed.shape == (round(length_s * SR),)
        assert np.all(np.isfinite(bed))
        assert mix.rms_db(bed) == pytest.approx(crowd.BED_RMS_DB, abs=0.01)


def test_spec_is_json_serialisable_and_round_trips(clips: dict) -> None:
    for seed in range(6):  # both clap modes occur
        spec = draw(clips, seed, 20.0)
        text = json.dumps(dataclasses.asdict(spec))
        assert crowd.bed_from_dict(json.loads(text)) == spec
    assert {draw(clips, s, 20.0).clap.mode for s in range(6)} == set(crowd.CLAP_MODES)


def test_parts_draw_independently(clips: dict) -> None:
    a = draw(clips, 5, 20.0)
    b = draw(clips, 5, 20.0, clap_bpm=(60.0, 61.0), rhythmic_prob=1.0, swells_per_min=(0.0, 0.0))
    assert a.voices == b.voices and a.singalong == b.singalong and a.babble_db == b.babble_db
    assert b.clap.mode == "rhythmic" and 60.0 <= b.clap.bpm <= 61.0 and b.swells == ()


def test_many_voices_are_smoother_than_one(clips: dict) -> None:
    def babble_ns(n_voices: int, seed: int) -> float:
        spec = crowd.sample_bed(np.random.default_rng(seed), len(clips["speech"]), 0, 0, 20.0,
                                **crowd_kwargs(voices=(n_voices, n_voices)))
        assert spec.swells == () and spec.clap.n_clappers == 0 and spec.clap.bursts == ()  # babble only
        return crowd.nonstationarity(crowd.render_bed(spec, clips["speech"], [], [], SR), SR)

    for seed in (0, 1):
        assert babble_ns(20, seed) < babble_ns(1, seed) - 1.0


@pytest.mark.parametrize("rhythmic_prob", [0.0, 1.0])
def test_bed_is_far_from_stationary_white_noise(clips: dict, rhythmic_prob: float) -> None:
    spec = draw(clips, 8, 30.0, voices=(20, 20), rhythmic_prob=rhythmic_prob, bursts_per_min=(6.0, 6.0))
    assert spec.swells and (spec.clap.n_clappers > 0 or spec.clap.bursts)
    bed = crowd.render_bed(spec, **clips, sr=SR)
    white = np.random.default_rng(0).standard_normal(bed.size) * 10 ** (crowd.BED_RMS_DB / 20)
    assert mix.rms_db(white) == pytest.approx(mix.rms_db(bed), abs=0.1)
    assert crowd.nonstationarity(white, SR) < 0.2
    assert crowd.nonstationarity(bed, SR) > 1.5
    babble = crowd.render_components(spec, **clips, sr=SR)["babble"]  # swells and clapping add the swings
    assert crowd.nonstationarity(bed, SR) > crowd.nonstationarity(babble, SR) + 0.5


def onset_envelope(x: np.ndarray, hop_s: float = 0.005) -> np.ndarray:
    hop = int(hop_s * SR)
    frames = x[:x.size // hop * hop].astype(float).reshape(-1, hop)
    level = np.log(np.mean(frames**2, axis=1) + 1e-12)
    flux = np.maximum(np.diff(level), 0.0)
    return flux - flux.mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rhythmic_clapping_repeats_at_the_drawn_tempo(clips: dict, seed: int) -> None:
    spec = draw(clips, seed, 20.0, rhythmic_prob=1.0, clap_fraction=(1.0, 1.0))
    clap = crowd.render_components(spec, **clips, sr=SR)["clap"]
    env = onset_envelope(clap)
    ac = np.correlate(env, env, mode="full")[env.size - 1:]
    lags_s = np.arange(ac.size) * 0.005
    window = (lags_s > 0.35) & (lags_s < 0.8)  # holds 60/bpm for 90..140 bpm, not its half or double
    best_s, period_s = lags_s[window][np.argmax(ac[window])], 60.0 / spec.clap.bpm
    assert best_s == pytest.approx(period_s, rel=0.05)
    assert ac[window].max() > 0.1 * ac[0]  # a clear peak ...
    assert ac[int(round(1.5 * period_s / 0.005))] < 0.25 * ac[window].max()  # ... and little off the beat


def test_bursts_mode_claps_in_applause_events(clips: dict) -> None:
    spec = draw(clips, 0, 20.0, rhythmic_prob=0.0, bursts_per_min=(6.0, 6.0))
    assert spec.clap.mode == "bursts" and spec.clap.n_clappers == 0 and spec.clap.bursts
    clap = crowd.render_components(spec, **clips, sr=SR)["clap"]
    assert mix.rms_db(clap) > -60.0


def envelope_corr(a: np.ndarray, b: np.ndarray, frame_s: float = 0.05) -> float:
    """Pearson correlation of the frame RMS envelopes of a and b (frames longer than the chorus delays)."""
    hop = int(frame_s * SR)
    env = [np.sqrt(np.mean(x[:x.size // hop * hop].astype(float).reshape(-1, hop) ** 2, axis=1)) for x in (a, b)]
    return float(np.corrcoef(env[0], env[1])[0, 1])


def test_singalong_follows_the_band_limited_music(clips: dict) -> None:
    spec = draw(clips, 2, 10.0)
    music, other = music_clip(10.0, seed=3, sr=SR), music_clip(10.0, seed=4, sr=SR)
    sing = crowd.render_components(spec, **clips, sr=SR, music=music)["singalong"]
    band = phone.band_limit(music, SR, *voices.SINGALONG_BAND_HZ)
    assert envelope_corr(band, sing) > 0.4  # the crowd sings (and pauses) with the song ...
    assert abs(envelope_corr(phone.band_limit(other, SR, *voices.SINGALONG_BAND_HZ), sing)) < 0.2  # not another
    assert mix.rms_db(sing) == pytest.approx(spec.singalong_db, abs=0.01)
    spectrum_low = np.abs(np.fft.rfft(sing))[: int(100 * sing.size / SR)]  # below the band: almost nothing
    assert np.sum(spectrum_low**2) < 0.01 * np.sum(np.abs(np.fft.rfft(sing)) ** 2)
    assert not np.any(crowd.render_components(spec, **clips, sr=SR)["singalong"])  # no music, no sing-along


def test_playback_rate_shifts_pitch_and_length() -> None:
    t = np.arange(SR) / SR
    y = voices.playback_rate(np.sin(2 * np.pi * 1000 * t), 1.25)
    assert y.size == pytest.approx(SR / 1.25, abs=2)
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * SR / y.size
    assert peak_hz == pytest.approx(1250, abs=5)


def test_bad_inputs_raise_clear_errors(clips: dict) -> None:
    speech, cheer, applause = clips["speech"], clips["cheer"], clips["applause"]
    with pytest.raises(ValueError, match="n_speech"):
        crowd.sample_bed(np.random.default_rng(0), 0, 3, 3, 10.0, **CROWD)
    with pytest.raises(ValueError, match="component_db"):
        crowd.sample_bed(np.random.default_rng(0), 3, 3, 3, 10.0,
                         **crowd_kwargs(component_db={"babble": (0.0, 0.0)}))
    with pytest.raises(ValueError, match="swell_attack_frac"):
        crowd.sample_bed(np.random.default_rng(0), 3, 3, 3, 10.0, **crowd_kwargs(swell_attack_frac=(0.5, 1.0)))
    spec = draw(clips, 0, 5.0, rhythmic_prob=1.0)
    with pytest.raises(ValueError, match="no speech clips"):
        crowd.render_bed(spec, [], cheer, applause, SR)
    used = spec.voices[0].clips[0]
    for bad, message in ((np.zeros(0, np.float32), "empty"), (np.full(SR, np.nan, np.float32), "contains NaN"),
                         (np.zeros((2, SR), np.float32), "1-D")):
        with pytest.raises(ValueError, match=rf"speech\[{used}\]: .*{message}"):
            crowd.render_bed(spec, [bad if i == used else c for i, c in enumerate(speech)], cheer, applause, SR)
    with pytest.raises(ValueError, match="applause: the spec claps"):
        crowd.render_bed(spec, speech, cheer, [], SR)
    swelling = draw(clips, 0, 10.0, swells_per_min=(30.0, 30.0))
    assert swelling.swells
    with pytest.raises(ValueError, match="cheer: the spec uses clip"):
        crowd.render_bed(swelling, speech, [], applause, SR)
    with pytest.raises(ValueError, match="music"):
        crowd.render_bed(spec, speech, cheer, applause, SR, music=np.full(100, np.nan, np.float32))
    silent = [np.zeros_like(c) for c in speech]
    babble_only = crowd.sample_bed(np.random.default_rng(0), len(speech), 0, 0, 5.0, **CROWD)
    with pytest.raises(ValueError, match="silent"):
        crowd.render_bed(babble_only, silent, [], [], SR)
    with pytest.raises(ValueError, match="frames"):
        crowd.nonstationarity(np.ones(SR // 2, np.float32), SR)
