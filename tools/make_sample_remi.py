"""Write the synthetic ReMI sample: ``sample/remi/{test,train}.parquet`` in the exact HF format.

No real ReMI row is public outside the Hugging Face parquet (../shared/samples/remi/SOURCE.md),
so every row here is written by hand in the style of one ReMI task, and every image is a
deterministic synthetic picture from ``tools.sample_images.make_image`` labelled "SYNTHETIC".

The files match the published layout of ``mehrankazemi/ReMI``: columns ``question``,
``label``, ``task`` (strings) and ``image_1`` ... ``image_6`` (``struct<bytes: binary,
path: string>``, null when unused), with the ``huggingface`` schema metadata that makes
``datasets`` decode ``image_N`` as ``Image`` features. Re-running gives the same bytes.

    .venv/bin/python -m tools.make_sample_remi            # writes sample/remi/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python tools/make_sample_remi.py` too
    sys.path.insert(0, str(ROOT))

from tools.sample_images import make_image  # noqa: E402

OUT = ROOT / "sample" / "remi"
N_IMAGE_COLUMNS = 6
TEXT_COLUMNS = ("question", "label", "task")

# (task, question, label, number of images, image format). Written for this sample only, in
# the style of each ReMI task; they are not ReMI rows.
TEST_ROWS: list[tuple[str, str, str, int, str]] = [
    (
        "EmojiAlgebra",
        "Compute the value of the expression shown in <image1> using the emoji equations in "
        "<image2><image3><image4>. Give the answer as an integer.",
        "37",
        4,
        "PNG",
    ),
    (
        "FuncRead",
        "<image1>The figure above plots a function f.\n<image2>The figure above plots a "
        "function g.\nWhat is f(2) + g(-1)? Round your answer to one decimal place.",
        "-2.5",
        2,
        "PNG",
    ),
    (
        "GeomShape",
        "The shapes in <image1>, <image2> and <image3> are drawn to scale on the same unit "
        "grid. What is the total area of the three shapes in square units? Use PI = 3.14 and "
        "round to 2 decimals.",
        "48.26",
        3,
        "PNG",
    ),
    (
        "GeomCost",
        "Fencing costs 12 dollars per metre. <image1> shows the plan of a garden and <image2> "
        "shows the price list for gates. What is the cheapest total cost, in dollars, to fence "
        "the garden with exactly one gate?",
        "1240",
        2,
        "JPEG",
    ),
    (
        "Collisions",
        "Two carts collide on a frictionless track. <image1> shows them before the collision "
        "and <image2> shows them afterwards. Is the collision elastic? Answer yes or no.",
        "no",
        2,
        "JPEG",
    ),
    (
        "Clocks",
        "How many minutes have passed between the time on the clock in <image1> and the time "
        "on the clock in <image2>? Assume that less than 12 hours have passed.",
        "135",
        2,
        "JPEG",
    ),
    (
        "Schedule",
        "Alice's calendar for Tuesday is <image1>, Bob's is <image2> and Carol's is <image3>. "
        "What is the earliest 30-minute slot on Tuesday when all three are free? Answer in "
        "HH:MM format.",
        "11:30",
        3,
        "PNG",
    ),
    (
        "Charts",
        "<image1><image2>The two charts show monthly rainfall in two towns. By how many "
        "millimetres does the June total in the second chart exceed the June total in the "
        "first chart?",
        "14",
        2,
        "PNG",
    ),
    (
        "CodeEdit",
        "<image1> is the plot produced by the code in <image2>. Which single line of the code "
        "must be changed, and how, so that it produces the plot in <image3> instead? Answer "
        "with the edited line only.",
        "plt.plot(x, y, color='red', linestyle='--')",
        3,
        "PNG",
    ),
    (
        "Isomorphism",
        "Are the graph in <image1> and the graph in <image2> isomorphic? Answer 1 for yes and "
        "0 for no.",
        "1",
        2,
        "PNG",
    ),
    (
        "Maps",
        "Start at the station marked in <image1> and follow, in order, the directions in "
        "<image2>, <image3>, <image4> and <image5>. In which compass direction is your final "
        "position from the starting point?",
        "north-east",
        5,
        "JPEG",
    ),
    (
        "RefCoco",
        "Each of the following photos has one object inside a red box. Which object is boxed "
        "in exactly two of the photos? <image1><image2><image3><image4><image5><image6>",
        "dog,puppy",
        6,
        "JPEG",
    ),
    (
        "IQ",
        "<image1> shows a sequence of three figures. Which of the candidates <image2> (A), "
        "<image3> (B) or <image4> (C) comes next in the sequence? Answer with the letter.",
        "B",
        4,
        "PNG",
    ),
]

TRAIN_ROWS: list[tuple[str, str, str, int, str]] = [
    (
        "Clocks",
        "<image1> <image2> <image3> The three clocks show the same moment in three cities. "
        "How many hours ahead of the first city is the third city?",
        "5",
        3,
        "PNG",
    ),
    (
        "Maps",
        "Using the scale bar in <image2>, how long in kilometres is the route drawn in "
        "<image1>? Round to one decimal place.",
        "3.5",
        2,
        "PNG",
    ),
]


def hf_schema() -> pa.Schema:
    """The arrow schema ``datasets`` writes for ReMI's features (with its metadata)."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [pa.field(name, pa.string()) for name in TEXT_COLUMNS]
    fields += [pa.field(f"image_{n}", image_type) for n in range(1, N_IMAGE_COLUMNS + 1)]
    features: dict[str, Any] = {n: {"dtype": "string", "_type": "Value"} for n in TEXT_COLUMNS}
    features.update({f"image_{n}": {"_type": "Image"} for n in range(1, N_IMAGE_COLUMNS + 1)})
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(fields, metadata=meta)


def build_rows(split: str, rows: list[tuple[str, str, str, int, str]]) -> list[dict[str, Any]]:
    """Rows as dicts; images are synthetic, seeded by split, row, task and image number."""
    out = []
    for i, (task, question, label, n_images, fmt) in enumerate(rows):
        row: dict[str, Any] = {"question": question, "label": label, "task": task}
        for n in range(1, N_IMAGE_COLUMNS + 1):
            if n > n_images:
                row[f"image_{n}"] = None
                continue
            data = make_image(
                f"remi/{split}/{i}/{task}/image_{n}",
                width=256 if n % 2 else 224,
                height=192 if n % 2 else 168,
                fmt=fmt,
                label=f"SYNTHETIC ReMI {task} image {n}",
            )
            # HF stores `path` when an Image was built from a file, null from PIL/bytes.
            path = f"{task.lower()}_{i}_{n}.png" if split == "train" else None
            row[f"image_{n}"] = {"bytes": data, "path": path}
        out.append(row)
    return out


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=hf_schema())
    pq.write_table(table, path, compression="snappy")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write(OUT / "test.parquet", build_rows("test", TEST_ROWS))
    write(OUT / "train.parquet", build_rows("train", TRAIN_ROWS))
    for name in ("test.parquet", "train.parquet"):
        print(f"wrote {OUT / name} ({(OUT / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
