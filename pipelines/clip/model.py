"""open_clip for Beam's RunInference: model spec, image preprocessing and the model wrapper
(the ``ModelHandler`` is in :mod:`pipelines.clip.handler`; torch and open_clip are imported in
the functions that need them, so launching a build with ``clip.checkpoint`` imports neither; the
preflight of a pretrained tag asks open_clip for the tag's files).

Loading is one code path for every kind of weights: ``open_clip.create_model_and_transforms(
model, pretrained=<tag or local file>)``. A pretrained tag (``openai``, ``laion2b_s32b_b82k``,
...) makes open_clip download the weights from its hub on first use and cache them
(``~/.cache/huggingface``, or ``HF_HOME``); a local file (``.safetensors``, ``.bin``,
``.pt``) is read from disk with no network (``gs://`` checkpoints are copied to a local
temporary file first). ``local-dir:/folder`` model names (``open_clip_config.json`` + weights,
the layout of open_clip's Hugging Face repositories) work as well.

Images reach the model already decoded, resized and centre-cropped to the model's input size
by :class:`ImagePreprocessor` (uint8, ``H x W x 3``), so every batch has one shape; converting
to float and normalising (mean/std) runs on the model's device inside :meth:`ClipModel.embed`.
Texts arrive tokenized (open_clip's tokenizer for the model; longer texts are truncated to the
model's context length, 77 tokens for OpenAI CLIP).
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pipelines.clip.tiny import register_model_configs
from schemas.errors import PipelineConfigError

LOG = logging.getLogger("mmloom.clip")

IMAGE = "image"
TEXT = "text"
# Geometry keys of open_clip's preprocess config that the preprocessing step must share with
# the loaded model (mean/std are applied on the device, from the model itself).
GEOMETRY_KEYS = ("size", "interpolation", "resize_mode", "fill_color")
# Rows of every forward pass (fewer when clip.max_batch_size is lower). Matrix-product
# kernels are chosen by shape, and a row's float32 result depends on the kernel: on the CPU
# (oneDNN/MKL) an embedding computed in a batch of 4 differs from the same image alone in
# the last bit or two. Running every pass on one shape, padded, makes each embedding a
# function of its own input only, whatever RunInference's batches hold. Measured in
# bench/clip_determinism.py and bench/RESULTS.md.
CPU_FORWARD_ROWS = 8
CUDA_FORWARD_ROWS = 64


def forward_rows(device: str, max_batch_size: int | None = None) -> int:
    """The fixed number of rows of every forward pass on ``device`` (``cpu`` or ``cuda``)."""
    rows = CUDA_FORWARD_ROWS if device == "cuda" else CPU_FORWARD_ROWS
    return max(1, min(rows, max_batch_size or rows))


class ClipInput(NamedTuple):
    """One RunInference example: an image (uint8 ``H x W x 3``) or a text (token ids).

    ``ref`` names what was embedded: the image's sha256, or the sha256 of the text.
    """

    kind: str
    ref: str
    data: np.ndarray


@dataclass(frozen=True)
class ClipSpec:
    """Which CLIP model to run, where and in what precision (from the config's ``clip`` block,
    whose schema holds the defaults).

    Attributes:
        model: open_clip model name (``ViT-L-14``), or ``local-dir:/folder``.
        pretrained: open_clip pretrained tag (weights from the hub), ignored when
            ``checkpoint`` is set.
        checkpoint: a local (or ``gs://``) weights file; no network.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16``, ``fp16``.
    """

    model: str
    pretrained: str | None
    checkpoint: str | None
    device: str
    precision: str

    @property
    def model_id(self) -> str:
        """What records name as ``scores.clip.model``: ``<model>/<tag>`` or ``<model>/<file>``."""
        if self.checkpoint:
            return f"{self.model}/{os.path.basename(self.checkpoint)}"
        if self.pretrained:
            return f"{self.model}/{self.pretrained}"
        return self.model


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA device is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "clip.device is 'cuda' but torch sees no CUDA device; set clip.device to 'auto' or "
            "'cpu', or run on a machine with a GPU and a CUDA build of torch"
        )
    if device not in ("cpu", "cuda"):
        raise ValueError(f"clip.device must be auto, cpu or cuda, got {device!r}")
    return device


def autocast_dtype(precision: str, device: str):
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    ``auto`` is bf16 on CUDA (fp16 on GPUs without bf16) and fp32 on CPU; fp16 is a GPU
    format, so on CPU it falls back to fp32 (bf16 autocast works on CPU).
    """
    import torch

    if precision == "fp32":
        return None
    if device == "cuda":
        if precision == "fp16":
            return torch.float16
        if precision in ("auto", "bf16"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        if precision == "bf16":
            return torch.bfloat16
        if precision == "fp16":
            LOG.warning("clip.precision fp16 is for GPUs; running fp32 on the CPU")
        return None
    raise ValueError(f"clip.precision must be auto, fp32, bf16 or fp16, got {precision!r}")


def _weights_path(spec: ClipSpec) -> str | None:
    """``pretrained`` argument for open_clip: a local file path, a tag, or None."""
    if spec.checkpoint:
        path = spec.checkpoint
        if "://" in path:
            path = _copy_to_local(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"CLIP checkpoint {spec.checkpoint} does not exist; make one with "
                "tools/make_tiny_clip.py, download real weights (see pipelines/clip/__init__.py) "
                "or set clip.pretrained to an open_clip tag instead"
            )
        return path
    return spec.pretrained


# open_clip's names for a hub repository's weights, in the order it tries them
HF_SAFE_WEIGHTS = "open_clip_model.safetensors"
HF_WEIGHTS = "open_clip_pytorch_model.bin"
HF_CONFIG = "open_clip_config.json"
# seconds the preflight waits for the hub to answer, when the weights are not cached
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class WeightsLookup:
    """Where the weights of a :class:`ClipSpec` are, found without reading or downloading them.

    Attributes:
        path: the local file (or folder, or ``gs://`` URI) open_clip will read; None when the
            weights are not on this machine (yet).
        remote: what open_clip would download them from (``hf://<repo>/<file>`` or a URL),
            when ``path`` is None; None when nothing is to be downloaded.
        describe: the weights in words, for messages (``ViT-L-14 with clip.pretrained
            'openai'``).
    """

    path: str | None
    remote: str | None
    describe: str


def _safe_alternatives(filename: str) -> list[str]:
    """The files open_clip tries for hub file ``filename``, in its order (its
    ``download_pretrained_from_hf``: the safetensors version first, when there is one)."""
    if filename == HF_WEIGHTS:
        return [HF_SAFE_WEIGHTS, filename]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _hub_cached(repo: str, names: list[str], cache_dir: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


def find_weights(spec: ClipSpec, cache_dir: str | None = None) -> WeightsLookup:
    """Where ``spec``'s weights are, resolved the way open_clip resolves them
    (``open_clip.get_pretrained_cfg`` for a tag: its ``hf_hub`` repository first, looked up
    in the Hugging Face cache with ``huggingface_hub.try_to_load_from_cache``; else its URL's
    file in ``~/.cache/clip``), with no download, no network and no weights read.

    Args:
        cache_dir: the Hugging Face hub cache (default: ``HF_HUB_CACHE``/``HF_HOME``'s).
    Raises:
        PipelineConfigError: an unknown model name, or a tag that is not one of the model's.
    """
    if spec.checkpoint:
        where = f"{spec.model} with clip.checkpoint {spec.checkpoint}"
        found = "://" in spec.checkpoint or os.path.isfile(spec.checkpoint)
        return WeightsLookup(spec.checkpoint if found else None, None, where)
    if spec.model.startswith("local-dir:"):
        folder = spec.model[len("local-dir:") :]
        found = os.path.isfile(os.path.join(folder, HF_CONFIG))
        return WeightsLookup(folder if found else None, None, f"clip.model {spec.model}")
    if spec.model.startswith("hf-hub:"):
        repo = spec.model[len("hf-hub:") :]
        config = _hub_cached(repo, [HF_CONFIG], cache_dir)
        weights = _hub_cached(repo, _safe_alternatives(HF_WEIGHTS), cache_dir)
        path = weights if config and weights else None
        remote = None if path else f"hf://{repo}/{HF_CONFIG}"
        return WeightsLookup(path, remote, f"clip.model {spec.model}")
    if not spec.pretrained:  # random weights: nothing to read
        return WeightsLookup(None, None, f"{spec.model} with no weights")
    import open_clip

    register_model_configs()
    where = f"{spec.model} with clip.pretrained {spec.pretrained!r}"
    cfg = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
    if not cfg:
        if open_clip.get_model_config(spec.model) is None:
            raise PipelineConfigError(
                f"unknown open_clip model {spec.model!r} (clip.model); see "
                "open_clip.list_models() (e.g. ViT-B-32, ViT-L-14)"
            )
        tags = open_clip.list_pretrained_tags_by_model(spec.model)
        raise PipelineConfigError(
            f"{spec.pretrained!r} is not an open_clip pretrained tag of {spec.model} "
            f"(clip.pretrained); known tags: {', '.join(tags) or 'none'}; or set "
            "clip.checkpoint to a local weights file"
        )
    if cfg.get("file"):
        found = os.path.isfile(cfg["file"])
        return WeightsLookup(cfg["file"] if found else None, None, where)
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        names = _safe_alternatives(filename or HF_WEIGHTS)
        path = _hub_cached(repo, names, cache_dir)
        return WeightsLookup(path, None if path else f"hf://{repo}/{names[0]}", where)
    url = cfg.get("url", "")
    local = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
    found = bool(url) and os.path.isfile(local)
    return WeightsLookup(local if found else None, None if found or not url else url, where)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or env.strip().upper() in ("1", "ON", "YES", "TRUE")


def _probe(remote: str) -> str | None:
    """Does ``remote`` answer (a HEAD request, :data:`PROBE_TIMEOUT` seconds)? None when it
    does, else why not, in words."""
    if remote.startswith("hf://"):
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        repo, _, name = remote[len("hf://") :].rpartition("/")
        try:
            get_hf_file_metadata(hf_hub_url(repo, name), timeout=PROBE_TIMEOUT)
        except Exception as exc:  # DNS, refused, timeout, HTTP errors: all say "not now"
            return f"the Hugging Face hub did not answer ({type(exc).__name__})"
        return None
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(remote, method="HEAD"), timeout=PROBE_TIMEOUT)
    except Exception as exc:
        return f"{remote.split('/')[2]} did not answer ({type(exc).__name__})"
    return None


def require_weights(spec: ClipSpec, config_path: str) -> None:
    """Refuse to start a build whose CLIP weights cannot be had, before any pipeline starts.

    The weights must be on this machine (a local checkpoint, a ``local-dir:`` folder, or the
    tag's file already in the Hugging Face or open_clip cache: :func:`find_weights`), or the
    place open_clip downloads them from must answer (a HEAD request of a few seconds; never
    with ``HF_HUB_OFFLINE`` set). Nothing is downloaded or loaded here.

    Raises:
        PipelineConfigError: one message naming ``clip.checkpoint`` in ``config_path`` and
            ``--no-clip``.
    """
    found = find_weights(spec)
    if found.path or not found.remote:
        if found.path:
            LOG.info("CLIP weights: %s", found.path)
        return
    why = "HF_HUB_OFFLINE is set" if _hub_offline() else _probe(found.remote)
    if why is None:
        LOG.info("CLIP weights %s are not cached yet: open_clip downloads them", found.remote)
        return
    raise PipelineConfigError(
        f"the CLIP weights for {found.describe} are not on this machine (not in the Hugging "
        f"Face cache nor ~/.cache/clip) and cannot be downloaded now ({why}): set "
        f'clip.checkpoint in {config_path} to a local weights file (README.md, "CLIP '
        'scoring"), or download them once where there is network and copy the cache '
        "(HF_HOME), or pass --no-clip to build without scoring"
    )


def _copy_to_local(uri: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(uri)[1]
    fd, local = tempfile.mkstemp(prefix="mmloom-clip-", suffix=suffix)
    with os.fdopen(fd, "wb") as out, FileSystems.open(uri, compression_type="uncompressed") as f:
        while chunk := f.read(64 << 20):
            out.write(chunk)
    return local


def preprocess_config(spec: ClipSpec) -> dict[str, Any]:
    """open_clip's inference preprocess config for ``spec``, without building the model.

    Mirrors what ``create_model`` sets on ``model.visual.preprocess_cfg``: defaults, then the
    pretrained tag's values, then the model's image size. :class:`ClipModel` checks the
    geometry against the loaded model, so a difference fails loudly instead of mis-scoring.
    """
    import json
    from dataclasses import asdict

    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    register_model_configs()
    cfg = asdict(PreprocessCfg())
    if spec.model.startswith("local-dir:"):
        folder = spec.model[len("local-dir:") :]
        with open(os.path.join(folder, "open_clip_config.json"), encoding="utf-8") as f:
            local = json.load(f)
        cfg = merge_preprocess_dict(cfg, local.get("preprocess_cfg", {}))
        model_cfg = local["model_cfg"]
    else:
        model_cfg = open_clip.get_model_config(spec.model)
        if model_cfg is None:
            raise ValueError(
                f"unknown open_clip model {spec.model!r}; see open_clip.list_models() "
                f"(e.g. ViT-B-32, ViT-L-14) or use 'mmloom-tiny-clip' for tests"
            )
        if not spec.checkpoint and spec.pretrained:
            tag_cfg = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(spec.model)
                raise ValueError(
                    f"{spec.pretrained!r} is not an open_clip pretrained tag of {spec.model}; "
                    f"known tags: {tags}; or set clip.checkpoint to a local weights file"
                )
            cfg = merge_preprocess_dict(cfg, tag_cfg)
    size = model_cfg["vision_cfg"].get("image_size", cfg["size"])
    cfg["size"] = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    return cfg


class ImagePreprocessor:
    """Decode image bytes and resize/crop them exactly like open_clip's inference transform.

    The geometric steps are taken from ``open_clip.transform.image_transform`` itself (so the
    resize mode, interpolation and crop match the model); the image is converted to RGB
    first, and the float conversion and normalisation are left to the device. JPEGs are
    decoded at a reduced DCT scale when the file is at least twice the target size (Pillow's
    ``draft``; the result is still at least the target size), which makes decoding large
    photographs several times cheaper.

    Raises whatever Pillow raises for bytes that are not a decodable image.
    """

    def __init__(self, cfg: dict[str, Any], jpeg_draft: bool = True) -> None:
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.size: tuple[int, int] = tuple(cfg["size"])
        full = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
        # keep resize/crop; drop mode conversion (done first), ToTensor and Normalize
        self._geometry = [
            t
            for t in full.transforms
            if type(t).__name__ not in ("MaybeConvertMode", "MaybeToTensor", "Normalize")
        ]
        self._jpeg_draft = jpeg_draft

    def __call__(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            if self._jpeg_draft and im.format == "JPEG":
                im.draft("RGB", self.size)
            rgb = im.convert("RGB")
        for t in self._geometry:
            rgb = t(rgb)
        arr = np.asarray(rgb, dtype=np.uint8)
        if arr.shape[:2] != self.size:
            raise ValueError(f"preprocessing gave shape {arr.shape}, expected {self.size}")
        return arr


class ClipModel:
    """A loaded open_clip model with its tokenizer's context and device settings.

    :meth:`embed` takes and returns numpy arrays only, so the object works the same when
    RunInference shares it across processes (the call then goes through a proxy). Every
    forward pass has exactly :attr:`forward_rows` rows (a batch is cut into passes of that
    size, the last one padded), so an embedding does not depend on which batch it came in.

    Args:
        spec: model, weights, device and precision.
        max_batch_size: caps :attr:`forward_rows` (see :func:`forward_rows`).
    """

    def __init__(self, spec: ClipSpec, max_batch_size: int | None = None) -> None:
        import open_clip
        import torch

        register_model_configs()
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.dtype = autocast_dtype(spec.precision, self.device)
        model, _, _ = open_clip.create_model_and_transforms(
            spec.model, pretrained=_weights_path(spec), device=self.device
        )
        model.eval()
        self.model = model
        cfg = dict(model.visual.preprocess_cfg)
        expected = preprocess_config(spec)
        got = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        got["size"] = got["size"] if isinstance(got["size"], tuple) else (got["size"],) * 2
        diff = {k: (expected[k], got[k]) for k in GEOMETRY_KEYS if expected[k] != got[k]}
        if diff:
            raise RuntimeError(
                f"CLIP preprocessing for {spec.model_id} disagrees with the loaded model "
                f"(expected, model): {diff}; report this with the model name and weights"
            )
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)
        self.forward_rows = forward_rows(self.device, max_batch_size)
        self._lock = threading.Lock()
        LOG.info(
            "loaded CLIP %s on %s (autocast %s, %d rows per forward pass)",
            spec.model_id,
            self.device,
            self.dtype or "off",
            self.forward_rows,
        )

    def _autocast(self):
        import torch

        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.dtype)

    def _encode_images(self, images: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images))
        if self.device == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        with self._autocast():
            return self.model.encode_image(x, normalize=True).float()

    def _encode_texts(self, tokens: np.ndarray):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(tokens)).to(self.device)
        with self._autocast():
            return self.model.encode_text(t, normalize=True).float()

    def _run(self, fn, arr: np.ndarray) -> np.ndarray:
        """Run ``fn`` on ``arr`` in forward passes of exactly :attr:`forward_rows` rows.

        The last pass is padded by repeating its last row, and only the real rows are kept,
        so every pass has one shape whatever the batch: see :data:`CPU_FORWARD_ROWS`.
        """
        rows = self.forward_rows
        out = []
        for start in range(0, len(arr), rows):
            part = arr[start : start + rows]
            n = len(part)
            if n < rows:
                part = np.concatenate([part, np.repeat(part[-1:], rows - n, axis=0)])
            out.append(self._forward(fn, part)[:n])
        return np.concatenate(out)

    def _forward(self, fn, arr: np.ndarray) -> np.ndarray:
        """``fn(arr)``; on CUDA out-of-memory, retry in halves down to single rows (the halves
        have another shape, so their last bits may differ from other builds: logged)."""
        import torch

        try:
            return fn(arr).cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            if len(arr) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(arr) // 2
            LOG.warning(
                "CUDA out of memory on a forward pass of %d rows; splitting it (these scores "
                "are no longer bitwise reproducible: lower clip.max_batch_size)",
                len(arr),
            )
            return np.concatenate([self._forward(fn, arr[:half]), self._forward(fn, arr[half:])])

    def embed(
        self, images: np.ndarray | None, tokens: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """L2-normalised float32 embeddings of ``images`` (N,H,W,3 uint8) and ``tokens`` (M,L)."""
        import torch

        with self._lock, torch.inference_mode():
            img = self._run(self._encode_images, images) if images is not None else None
            txt = self._run(self._encode_texts, tokens) if tokens is not None else None
        return img, txt
