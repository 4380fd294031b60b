"""Preprocessing: the training path and the runtime path give byte-identical tensors.

Training reads a dataset folder (``models.dataset.load_category`` with the parameters
training uses); the runtime gets a stored record and the shipped card's parameters
(``RelevanceModel.tensor``, what ``predict`` feeds the interpreter). For every
category — photos and scans in several formats, pydicom's real CT slice beside
synthetic DICOM, WAV and browser-style Opus voice notes, the Wisconsin EMR entries —
both must agree bit for bit. Also checked here: the HU arithmetic, the mel
filterbank, EMR missing fields and the refusals.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from models import synthetic
from models.categories import CATEGORIES, EMR_ENTRY
from models.dataset import EMR_FILE, list_records, load_category
from models.preprocess import (
    CtParams,
    EmrParams,
    ImageParams,
    PreprocessError,
    VoiceParams,
    ct_tensor,
    default_params,
    emr_tensor,
    hounsfield,
    image_tensor,
    log_mel_spectrogram,
    mel_filterbank,
    params_from_json,
    params_to_json,
    preprocess,
    voice_tensor,
)
from models.runtime import RelevanceModel

LABELS = synthetic.DEMO_LABELS
CT_SMALL = Path(str(get_testdata_file("CT_small.dcm")))


def _save(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def _image_variants(rng: np.random.Generator, label: str, scan: bool) -> dict[str, bytes]:
    """The same synthetic picture as RGBA PNG, WebP, 16-bit TIFF (scans) and EXIF JPEG."""
    data = (synthetic.scan if scan else synthetic.photo)(label, rng)
    picture = Image.open(io.BytesIO(data))
    out: dict[str, bytes] = {}
    rgba = picture.convert("RGBA")
    rgba.putalpha(200)
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    out["rgba.png"] = buffer.getvalue()
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "WEBP", lossless=True)
    out["lossless.webp"] = buffer.getvalue()
    if scan:
        grey16 = (np.asarray(picture.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        buffer = io.BytesIO()
        Image.fromarray(grey16).save(buffer, "TIFF")
        out["grey16.tif"] = buffer.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    out["exif6.jpg"] = buffer.getvalue()
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, wisconsin: list[dict[str, Any]]) -> Path:
    """A training-layout folder with records of every category and format."""
    root = tmp_path_factory.mktemp("identity-dataset")
    rng = np.random.default_rng(99)
    for index in range(3):
        for label in LABELS:
            _save(root / "clinical_photo" / label, f"p{index}.img", synthetic.photo(label, rng))
            _save(root / "record_scan" / label, f"s{index}.img", synthetic.scan(label, rng))
            _save(root / "ct_image" / label, f"c{index}.dcm", synthetic.ct_dicom(label, rng))
            _save(root / "voice_note" / label, f"v{index}.wav", synthetic.voice_wav(label, rng))
    for label in LABELS:
        for name, data in _image_variants(rng, label, scan=False).items():
            _save(root / "clinical_photo" / label, name, data)
        for name, data in _image_variants(rng, label, scan=True).items():
            _save(root / "record_scan" / label, name, data)
        samples = synthetic.voice_samples(label, rng, 48000)
        _save(root / "voice_note" / label, "note.webm", synthetic.encoded_audio(samples, 48000))
        ogg = synthetic.encoded_audio(samples, 48000, "ogg")
        _save(root / "voice_note" / label, "note.ogg", ogg)
    shutil.copyfile(CT_SMALL, root / "ct_image" / "benign" / "real-CT_small.dcm")
    emr = root / EMR_ENTRY / EMR_FILE
    emr.parent.mkdir(parents=True)
    emr.write_text("".join(json.dumps(entry) + "\n" for entry in wisconsin), "utf-8")
    return root


@pytest.mark.parametrize("category", CATEGORIES)
def test_training_and_runtime_tensors_are_identical(
    category: str, dataset: Path, demo_model: RelevanceModel
) -> None:
    seed = int(demo_model.card.data["training"]["seed"])
    if category == EMR_ENTRY:
        features = demo_model.card.branches[EMR_ENTRY].params
        assert isinstance(features, EmrParams)
        training = load_category(dataset, category, LABELS, seed, features=features.features)
    else:
        training = load_category(dataset, category, LABELS, seed, default_params(category))
    # the card stores exactly the parameters training used (EMR: refitted identically)
    assert training.params == demo_model.card.branches[category].params
    records = list_records(dataset, category)
    assert len(records) == len(training.x) >= 6
    for record, trained in zip(records, training.x, strict=True):
        item = record.fields if record.fields is not None else record.path
        assert item is not None
        runtime = demo_model.tensor(category, item)
        assert runtime.dtype == np.float32 and trained.dtype == np.float32
        assert runtime.shape == demo_model.card.branches[category].input_shape
        assert runtime.tobytes() == trained.tobytes(), f"{category}: {record.path}"
        if record.path is not None:  # bytes and path give the same tensor
            from_bytes = demo_model.tensor(category, record.path.read_bytes())
            assert from_bytes.tobytes() == runtime.tobytes()


def test_real_ct_slice_goes_through_the_dicom_path(demo_model: RelevanceModel) -> None:
    data = CT_SMALL.read_bytes()
    dataset = pydicom.dcmread(CT_SMALL)
    expected = dataset.pixel_array.astype(np.float64) * float(dataset.RescaleSlope) + float(
        dataset.RescaleIntercept
    )
    np.testing.assert_array_equal(hounsfield(data), expected)
    tensor = demo_model.tensor("ct_image", data)
    assert tensor.shape == (64, 64, 1)
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert float(tensor.std()) > 0.05  # real anatomy, not a blank slice
    probabilities = demo_model.predict("ct_image", data)
    assert probabilities.shape == (2,) and probabilities.sum() == pytest.approx(1.0)


def test_ct_rescale_and_window_arithmetic() -> None:
    """A 64×64 slice (no resize) with slope 0.5: exact HU → window mapping."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    hu = np.full((64, 64), -1000.0)
    hu[:, 16:32] = -160.0  # window low end → 0
    hu[:, 32:48] = 40.0  # centre → 0.5
    hu[:, 48:] = 1000.0  # above → 1
    stored = np.round((hu + 1024.0) / 0.5).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024
    ds.PixelData = stored.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    tensor = ct_tensor(buffer.getvalue(), CtParams())[:, :, 0]
    assert tensor[10, 8] == 0.0
    assert tensor[10, 20] == 0.0
    assert tensor[10, 40] == pytest.approx(0.5)
    assert tensor[10, 60] == 1.0


def test_exif_orientation_is_applied() -> None:
    picture = Image.new("RGB", (120, 80), (200, 180, 160))
    picture.paste((20, 20, 20), (0, 0, 30, 30))  # a dark corner shows the orientation
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged, upright = io.BytesIO(), io.BytesIO()
    picture.save(tagged, "PNG", exif=exif.tobytes())
    picture.transpose(Image.Transpose.ROTATE_270).save(upright, "PNG")
    params = default_params("clinical_photo")
    a = preprocess("clinical_photo", tagged.getvalue(), params)
    b = preprocess("clinical_photo", upright.getvalue(), params)
    assert a.tobytes() == b.tobytes()


def test_mel_filterbank_is_well_formed() -> None:
    p = VoiceParams()
    bank = mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
    assert bank.shape == (p.n_mels, p.n_fft // 2 + 1)
    assert np.all(bank >= 0) and np.all(bank.max(axis=1) <= 1.0)
    assert np.all(bank.sum(axis=1) > 0), "an empty mel band"
    centres = bank.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)
    bin_hz = p.sample_rate / p.n_fft
    assert bank[:, : math.floor(p.fmin / bin_hz)].sum() == 0  # nothing below fmin
    assert bank[:, math.ceil(p.fmax / bin_hz) + 1 :].sum() == 0  # nothing above fmax


def test_log_mel_of_a_tone_peaks_in_its_band() -> None:
    p = VoiceParams()
    t = np.arange(p.clip_samples) / p.sample_rate
    spectrogram = log_mel_spectrogram(0.5 * np.sin(2 * np.pi * 1000.0 * t), p)
    assert spectrogram.shape == (p.n_mels, p.n_frames)
    bank = mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
    tone_bin = round(1000.0 / (p.sample_rate / p.n_fft))
    expected_band = int(bank[:, tone_bin].argmax())
    assert abs(int(spectrogram.mean(axis=1).argmax()) - expected_band) <= 1


def test_voice_formats_decode_to_similar_spectrograms() -> None:
    rng = np.random.default_rng(5)
    samples = synthetic.voice_samples("benign", rng, 48000)
    p = VoiceParams()
    wav = voice_tensor(synthetic.wav_bytes(samples, 48000), p)
    webm = voice_tensor(synthetic.encoded_audio(samples, 48000, "webm"), p)
    assert wav.shape == webm.shape == p.shape
    assert float(np.abs(wav - webm).mean()) < 0.05  # lossy Opus, same sound


def test_emr_missing_fields_become_the_training_mean() -> None:
    params = EmrParams(features=("mean radius", "mean area"), mean=(14.0, 650.0), std=(3.5, 350.0))
    complete = emr_tensor({"mean radius": 17.5, "mean area": 300.0}, params)
    np.testing.assert_allclose(complete, [1.0, -1.0])
    missing = emr_tensor({"Mean_Radius": "17.5"}, params)  # case, punctuation, string
    np.testing.assert_allclose(missing, [1.0, 0.0])
    junk = emr_tensor({"mean radius": "n/a", "mean area": None, "other": 5}, params)
    np.testing.assert_array_equal(junk, [0.0, 0.0])
    assert emr_tensor({"mean radius": True}, params)[0] == 0.0  # booleans are not numbers


def test_params_survive_the_card_json() -> None:
    for category in CATEGORIES[:-1]:
        params = default_params(category)
        text = json.dumps(params_to_json(params))
        assert params_from_json(category, json.loads(text)) == params
    emr = EmrParams(("a", "b"), (0.1 + 0.2, 1e-300), (1 / 3, 7.0))
    assert params_from_json(EMR_ENTRY, json.loads(json.dumps(params_to_json(emr)))) == emr


def test_unreadable_records_are_refused() -> None:
    photo, scan = default_params("clinical_photo"), default_params("record_scan")
    with pytest.raises(PreprocessError, match="PDF"):
        preprocess("record_scan", b"%PDF-1.7\n...", scan)
    with pytest.raises(PreprocessError):
        preprocess("clinical_photo", b"\xff\xd8\xff\xe0 truncated jpeg", photo)
    with pytest.raises(PreprocessError):
        preprocess("ct_image", b"not dicom at all", default_params("ct_image"))
    with pytest.raises(PreprocessError):
        preprocess("voice_note", b"#EXTM3U\nhttp://example.invalid/a.wav\n", VoiceParams())
    with pytest.raises(PreprocessError):
        preprocess("voice_note", b"RIFF\x00\x00\x00\x00WAVEjunk", VoiceParams())
    with pytest.raises(PreprocessError):
        preprocess(EMR_ENTRY, b"{}", EmrParams(("a",), (0.0,), (1.0,)))


def test_image_tensor_shapes_and_range() -> None:
    rng = np.random.default_rng(3)
    params = default_params("clinical_photo")
    assert isinstance(params, ImageParams)
    photo = image_tensor(synthetic.photo("malignant", rng), params)
    assert photo.shape == (64, 64, 3) and photo.dtype == np.float32
    assert float(photo.min()) >= 0.0 and float(photo.max()) <= 1.0
