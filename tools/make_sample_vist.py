"""Write the VIST sample (``sample/vist/``) from real VIST records; deterministic, re-runnable.

    .venv/bin/python tools/make_sample_vist.py            # writes sample/vist/
    .venv/bin/python tools/make_sample_vist.py --out DIR  # somewhere else

What it writes (provenance in ``sample/vist/SOURCE.md``):

* ``sis/test.story-in-sequence.json``: the real SIS container (``albums``, ``images``,
  ``annotations`` as 1-element lists) holding
  - the one raw SIS record published verbatim (album 44277, image 1741642, storylet 227650 of
    story 45530), unchanged; only its first storylet is public, so in this sample story 45530
    has 1 storylet and the reader reports it as ``malformed_story``;
  - 9 real test stories from the VIST-Challenge gold/submission file (album id, 5 ordered
    photo ids, normalised story text), each split into its 5 sentences, one per photo. Story
    ids, storylet ids and album labels are ours (see SOURCE.md); ``original_text`` is not
    published for them and is left out, so the sample config uses ``text_field: text``.
* ``images/test/<photo_id>.jpg``: generated stand-in photos (``tools.sample_images``); one is
  a PNG (stem resolution) and one photo is left out on purpose (deleted from Flickr).
* ``upstream/sis_raw_record_example.json``: the raw record, verbatim.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repo importable
    sys.path.insert(0, str(ROOT))

from tools.sample_images import make_image  # noqa: E402

SPLIT = "test"

# The raw SIS record, verbatim from github.com/sil-ai/bloom-parsing
# bloom_downloads_to_vist_format.py @ 97fff9c027c4e5d3300881f8fd41a2ea04f7eb34 (a code comment
# copied from the original VIST test.story-in-sequence.json), as transcribed in
# ../shared/samples/vist/sis_raw_record_example.json.
RAW_RECORD = {
    "albums": [
        {
            "description": "I left Stevenage over twenty years ago, having lived there between the "
            "ages of 7 and 20. Yesterday (on International Buy Nothing Day!) we returned for a "
            "'Victorian Craft Fair' in the Church above the town Museum. Very strange...",
            "title": "A trip to Stevenage",
            "farm": "1",
            "date_update": "1396811566",
            "primary": "1741611",
            "server": "2",
            "date_create": "44277",
            "photos": "23",
            "secret": "3f374c96e5",
            "owner": "37996585435@N01",
            "vist_label": "fair",
            "id": "44277",
        }
    ],
    "images": [
        {
            "datetaken": "2004-11-27 10:40:46",
            "license": "1",
            "title": "The venue.",
            "text": "",
            "album_id": "44277",
            "longitude": "-0.212688",
            "url_o": "https://farm1.staticflickr.com/2/1741642_81837e8e9e_o.jpg",
            "secret": "81837e8e9e",
            "media": "photo",
            "latitude": "51.920449",
            "id": "1741642",
            "tags": "stevenage fairies craftfair xmas 2004",
        }
    ],
    "annotations": [
        [
            {
                "original_text": "The local parish holds a craft show each year.",
                "album_id": "44277",
                "photo_flickr_id": "1741642",
                "setting": "first-2-pick-and-tell",
                "worker_id": "FJROI8NWDRIPAM1",
                "story_id": "45530",
                "tier": "story-in-sequence",
                "worker_arranged_photo_order": 0,
                "text": "the local parish holds a craft show each year .",
                "storylet_id": "227650",
            }
        ]
    ],
}

# Real test stories: entries 0, 1, 2, 4, 10, 15, 26, 28 and 39 of `output_stories` in
# github.com/windx0303/VIST-Challenge-NAACL-2018
# example_submission_json/example-submission-file.test.json @ cedd41e (the first human story of
# each test photo sequence), copied verbatim from
# ../shared/samples/vist/challenge_test_first_story_per_sequence_slice.json.
# LABELS: our own vist_label per album, chosen from the story text (the real labels of these
# albums are not published in any file we have).
STORIES = [
    {
        "album_id": "72157623375467685",
        "photo_sequence": ["4335064615", "4332006810", "4335809672", "4335812894", "4335071867"],
        "story_text_normalized": (
            "this is a picture of the city where we stayed on vacation . not far from us "
            "was this majestic mountain . this is where we had to park our rental car . one "
            "of the attractions near where we parked . thankfully there was a starbucks "
            "there !"
        ),
    },
    {
        "album_id": "72157623375467685",
        "photo_sequence": ["4332006810", "4335064615", "4335065397", "4335814318", "4335074029"],
        "story_text_normalized": (
            "we arrived in location and immediately were overwhelmed by location . we "
            "climbed to the nearest peak and decided on our plan . we decided to head "
            "toward the market ... we took pictures , ate , and enjoyed ourselves ... and , "
            "then it was time to stock up on supplies -- i wanted oranges -- for the trip ."
        ),
    },
    {
        "album_id": "72157594197494263",
        "photo_sequence": ["188516609", "188516673", "188516850", "188516920", "188516711"],
        "story_text_normalized": (
            "lots of drinks for the organization organization 's day party ! even the dog "
            "marnie had maybe a drink or two . couple drinks in and [male] and [female] are "
            "feeling quite cozy . a couple more drinks and [female] is hugging everybody . "
            "not to be outdone though , [female] was out here kissing random guys ."
        ),
    },
    {
        "album_id": "72057594087766263",
        "photo_sequence": ["116154798", "116154073", "116144448", "116151139", "116157183"],
        "story_text_normalized": (
            "a group of friends and i drove to visit a church . when we got there we "
            "planned are day together . there was a bird flying in the sky that i have "
            "never seen . the day was sunny and cloudy at the same time . when we arrived "
            "at the church it was huge ."
        ),
    },
    {
        "album_id": "72157594460914672",
        "photo_sequence": ["346601054", "346601113", "346601149", "346600813", "346600938"],
        "story_text_normalized": (
            "when i arrived in location , the weather was a bit cold . many of the "
            "buildings were incredibly ornate , with statues near the entrances . the "
            "palace was beautiful , and very big . the city was all decked out in lights "
            "for the christmas festival . we went in a store and saw some beautiful "
            "christmas decorations ."
        ),
    },
    {
        "album_id": "414318",
        "photo_sequence": ["17437540", "17439347", "17439348", "17461182", "17465339"],
        "story_text_normalized": (
            "i went to the market to buy some spices . they had so many different kinds "
            "there . it was for a very good price . i bought what i needed and then i "
            "browsed for a bit more . i decided to buy some wine as well ."
        ),
    },
    {
        "album_id": "72157602796939680",
        "photo_sequence": ["14787705", "14786890", "14787291", "14787491", "14787702"],
        "story_text_normalized": (
            "halloween finally arrived . everyone took part putting together outfits from "
            "their closets . we had rockstars among us . but the most ingenious prop was "
            "the evil plank . though im not sure our co-worker was happy losing the contest "
            "to a piece of wood ."
        ),
    },
    {
        "album_id": "330946",
        "photo_sequence": ["13649597", "13648207", "13648208", "13650765", "13649594"],
        "story_text_normalized": (
            "the smith family know they needed the best lanterns for halloween . work began "
            "early , with family members taking shifts to get the pumpkins carved . it was "
            "hard work , but they knew it would pay off in the end . at the end of they day "
            ", there was an entire table full of jack o lanterns . come night fall , the "
            "smith 's had the scariest house on the street ."
        ),
    },
    {
        "album_id": "72157624460721459",
        "photo_sequence": ["4858594900", "4857971851", "4857978167", "4858580572", "4858576954"],
        "story_text_normalized": (
            "the couple exchanging vows . groom putting the wedding band on her finger . "
            "best man giving the groom the rings . kids playing piano . the bride dancing "
            "with her daughter ."
        ),
    },
]
LABELS = {
    "72157623375467685": "vacation",
    "72157594197494263": "party",
    "72057594087766263": "church",  # not in fields.yaml: shows the Everyday Life default
    "72157594460914672": "christmas",
    "414318": "market",
    "72157602796939680": "halloween",
    "330946": "halloween",
    "72157624460721459": "wedding",
}
FIRST_STORY_ID = 990001  # invented story ids: 990001.. (real test ids are not published)
MISSING_PHOTO = "13650765"  # left out: stands for a photo deleted from Flickr (image_missing)
PNG_PHOTO = "4858576954"  # written as .png: the reader resolves photos by file stem
SIZE = (320, 240)

SENTENCE_END = re.compile(r"(?<=[.!?]) (?=\S)")


def split_story(text: str) -> list[str]:
    """The 5 storylet sentences of a normalised story (split after ``.``, ``!`` or ``?``)."""
    parts = SENTENCE_END.split(text)
    if len(parts) != 5:
        raise ValueError(f"expected 5 sentences, got {len(parts)}: {text!r}")
    return parts


def build_sis() -> dict:
    """The SIS container: the raw record first, then the 9 challenge stories."""
    albums = [dict(a) for a in RAW_RECORD["albums"]]
    images = [dict(i) for i in RAW_RECORD["images"]]
    annotations = [[dict(a[0])] for a in RAW_RECORD["annotations"]]
    seen_albums = {a["id"] for a in albums}
    seen_images = {i["id"] for i in images}
    for n, story in enumerate(STORIES):
        album_id = story["album_id"]
        if album_id not in seen_albums:
            albums.append({"id": album_id, "vist_label": LABELS[album_id]})
            seen_albums.add(album_id)
        story_id = FIRST_STORY_ID + n
        sentences = split_story(story["story_text_normalized"])
        for order, (photo, sentence) in enumerate(zip(story["photo_sequence"], sentences)):
            if photo not in seen_images:
                images.append({"id": photo, "album_id": album_id, "media": "photo"})
                seen_images.add(photo)
            annotations.append(
                [
                    {
                        "story_id": str(story_id),
                        "storylet_id": str(story_id * 5 + order),
                        "album_id": album_id,
                        "photo_flickr_id": photo,
                        "worker_arranged_photo_order": order,
                        "tier": "story-in-sequence",
                        "text": sentence,
                    }
                ]
            )
    return {"albums": albums, "images": images, "annotations": annotations}


def write(out: Path) -> dict[str, int]:
    """Write the sample under ``out`` (replacing sis/, images/ and upstream/)."""
    for sub in ("sis", "images", "upstream"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "sis").mkdir(parents=True)
    (out / "upstream").mkdir(parents=True)
    img_dir = out / "images" / SPLIT
    img_dir.mkdir(parents=True)

    sis = build_sis()
    (out / "sis" / f"{SPLIT}.story-in-sequence.json").write_text(
        json.dumps(sis, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "upstream" / "sis_raw_record_example.json").write_text(
        json.dumps(RAW_RECORD, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    photos = sorted({p for s in STORIES for p in s["photo_sequence"]})
    written = 0
    for photo in photos:
        if photo == MISSING_PHOTO:
            continue
        fmt, ext = ("PNG", "png") if photo == PNG_PHOTO else ("JPEG", "jpg")
        data = make_image(f"vist/{photo}", *SIZE, fmt=fmt, label=f"vist {photo}")
        (img_dir / f"{photo}.{ext}").write_bytes(data)
        written += 1
    return {"stories": len(STORIES) + 1, "photos": written}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample" / "vist")
    args = parser.parse_args(argv)
    counts = write(args.out)
    print(f"wrote {args.out}: {counts}")


if __name__ == "__main__":
    main()
