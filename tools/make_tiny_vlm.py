"""Write a tiny random-weight vision-language model folder for tests and CPU smoke runs.

    python -m tools.make_tiny_vlm --output out/models/mmloom-tiny-vlm

The folder is what a real ``transformers`` image-text-to-text model on disk looks like
(``config.json``, ``model.safetensors``, tokenizer and image-processor files, a chat
template), so the label-suspicion audit loads it exactly like a downloaded model
(``AutoProcessor`` / ``AutoModelForImageTextToText.from_pretrained(folder,
local_files_only=True)``). Nothing is downloaded:

* the architecture is LLaVA's (a CLIP vision tower, a projector, a Llama decoder), each part
  a few layers of width 32, with seeded random weights;
* the tokenizer is built here: one token per printable ASCII character plus ``<unk>``,
  ``<s>``, ``</s>``, ``<pad>`` and ``<image>`` (a ``tokenizers`` WordLevel model over a
  character split), wrapped as a fast tokenizer;
* the image processor is CLIP's, at 32x32 pixels (16 patches, so 16 image tokens per image).

Its answers mean nothing: it exists so that loading, batching and scoring run for real.
Deterministic for a given seed and torch build.
"""

from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TINY_VLM_NAME = "mmloom-tiny-vlm"
IMAGE_TOKEN = "<image>"
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
IMAGE_SIZE = 32
PATCH = 8

# A plain chat template: a user turn holding text and image parts in order, then the
# assistant's turn. Real models ship their own; the audit only relies on the standard
# ``messages`` form ({"role", "content": [{"type": "text"|"image", ...}]}).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'].upper() }}: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_tokenizer():
    """A character-level fast tokenizer (printable ASCII) with the special tokens above."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # <image> stays whole (an added special token); everything else splits into characters
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # characters back into text, no spaces between them
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    fast.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return fast


def make_tiny_vlm(output: str | Path, seed: int = 0) -> Path:
    """Write the tiny model folder at ``output`` (created or overwritten file by file)."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    config.name_or_path = TINY_VLM_NAME
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # a wider spread than the init's 0.02, so answers differ by input
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.2)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=f"out/models/{TINY_VLM_NAME}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(make_tiny_vlm(args.output, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
