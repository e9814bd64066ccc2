"""Write the wikiHow (VGSI) sample: ``sample/wikihow/`` (deterministic, re-runnable).

No raw line of VGSI's ``WikihowText_data.json`` is public outside its Google Drive folder
(see sample/wikihow/SOURCE.md), so the ten articles below were written by hand in the exact
published line format (docs/source-formats.md §1.3): JSON Lines, one article per line, keys
``file_id, goal, goal_description, category_hierarchy, methods[].{name, method_id, steps[].
{headline, description, img, img_license, step_id}}``. Step images are synthetic PNGs from
``tools.sample_images.make_image``, named ``<step_id>.png`` and spread over the flat
``wiki_images/`` folder and its ``train/`` and ``test/`` subfolders.

Deliberate quirks: one null ``goal_description``, one degenerate ``"."`` headline, one
article without ``method_id`` keys, one missing later-step image, one single-step method
(dropped: ``too_few_steps``), one Home and Garden article (dropped: ``unmapped_category``),
one method with 7 steps (answer capped at 5), one unknown second-level category (subfield
"General Education"), a non-ASCII character and a trailing space in the text.

Usage::

    python tools/make_sample_wikihow.py            # writes sample/wikihow/
    python tools/make_sample_wikihow.py OUT_DIR    # writes elsewhere (tests compare)
    python -m tools.make_sample_wikihow            # the same, from the repository root
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python tools/make_sample_wikihow.py
    sys.path.insert(0, str(ROOT))

from tools.sample_images import make_image  # noqa: E402

DEFAULT_OUT = ROOT / "sample" / "wikihow"
TEXT_FILE = "WikihowText_data.json"
IMAGES_DIR = "wiki_images"
LICENSE = "Creative Commons"

# (file_id, goal, goal_description, category_hierarchy, image folder, with_method_id,
#  [(method name, [(headline, description), ...]), ...])
ARTICLES: list[tuple[str, str, str | None, list[str], str, bool, list]] = [
    (
        "90000101",
        "How to Write a Thank You Note",
        "A handwritten thank you note takes a few minutes, and people remember it far longer "
        "than a text message. Keep it short, specific and warm.",
        ["Education and Communications", "Writing", "Letters"],
        "train",
        True,
        [
            (
                "Writing the Note",
                [
                    (
                        "Choose a plain card or good paper.",
                        "A simple folded card works for almost any occasion. Avoid cards with "
                        "long printed messages, since your own words matter more.",
                    ),
                    (
                        "Greet the person by name.",
                        'Start with "Dear" and the name you normally use for them, such as '
                        '"Dear Aunt Maria," or "Dear Mr. Chen,".',
                    ),
                    (
                        "Name the gift or favor specifically.",
                        "Write one sentence about exactly what they gave or did, for example "
                        '"Thank you for the blue scarf you knitted for me."',
                    ),
                    (
                        "Close with a warm sign-off.",
                        'End with a line looking forward, then "Love," "Best wishes," or '
                        '"Sincerely," and your signature.',
                    ),
                ],
            ),
            (
                "Sending the Note",
                [
                    (
                        "Address the envelope clearly.",
                        "Write the recipient's full name and address in the center and your "
                        "return address in the top left corner.",
                    ),
                    (
                        "Add the correct postage.",
                        "Square or oversized cards can need extra postage, so check at the "
                        "post office if you are unsure.",
                    ),
                    (
                        "Mail it within a week or two.",
                        "A prompt note shows you cared, but a late note is still better than "
                        "none at all.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000102",
        "How to Make a Monthly Budget",
        None,
        ["Finance and Business", "Managing Your Money", "Budgeting"],
        "train",
        True,
        [
            (
                "Creating Your Budget",
                [
                    (
                        "Add up your monthly income.",
                        "Use your take-home pay after taxes, and include any regular side "
                        "income. If your income varies, use your lowest recent month.",
                    ),
                    (
                        "List your fixed expenses.",
                        "Write down rent or mortgage, insurance, loan payments and "
                        "subscriptions that cost the same every month.",
                    ),
                    (
                        "Estimate your variable expenses.",
                        "Look at your last three bank statements to see what you really spend "
                        "on groceries, fuel, eating out and entertainment.",
                    ),
                    (
                        "Set a savings goal.",
                        "Decide on an amount to move into savings each payday, even if it is "
                        "small, and treat it like a bill.",
                    ),
                    (
                        "Review the budget at the end of the month.",
                        "Compare what you planned with what you spent and adjust the "
                        "categories that were off.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000103",
        "How to Treat a Minor Burn",
        "Most small kitchen burns are first-degree burns that heal on their own in about a "
        "week. Cooling the skin quickly limits the damage. See a doctor for large, deep or "
        "blistering burns.",
        ["Health", "First Aid and Emergency Health Care", "Burns"],
        "train",
        True,
        [
            (
                "Cooling the Burn",
                [
                    (
                        "Move away from the heat source.",
                        "Turn off the stove or put down the hot object so you do not burn "
                        "yourself again.",
                    ),
                    (
                        "Hold the burn under cool running water.",
                        "Keep it there for 10 to 20 minutes. Do not use ice, which can damage "
                        "the skin further.",
                    ),
                    (
                        "Remove rings or tight items.",
                        "Burned skin swells, so take off jewelry near the burn before it does.",
                    ),
                    (
                        "Pat the area dry.",
                        "Use a clean towel and pat gently instead of rubbing.",
                    ),
                ],
            ),
            (
                "Dressing the Burn",
                [
                    (
                        "Apply aloe vera gel or a burn cream.",
                        "A thin layer soothes the skin. Avoid butter, oil or toothpaste.",
                    ),
                    (
                        "Cover it loosely with a sterile bandage.",
                        "Use non-stick gauze and tape it away from the burned skin.",
                    ),
                    (
                        "Take a pain reliever if needed.",
                        "Ibuprofen or acetaminophen can ease the pain; follow the dose on the "
                        "package.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000104",
        "How to Take a Screenshot in Windows",
        "Windows has several built-in ways to capture your screen, from a single key to a "
        "tool that lets you select any area.",
        ["Computers and Electronics", "Operating Systems", "Windows"],
        "test",
        False,
        [
            (
                "Using the Print Screen Key",
                [
                    (
                        "Open the window you want to capture.",
                        "Close anything private first, since the whole screen will be captured.",
                    ),
                    (
                        "Press the Windows key and PrtScn together.",
                        "The screen dims for a moment to show the screenshot was taken.",
                    ),
                    (
                        "Open File Explorer.",
                        "Press the Windows key and E at the same time.",
                    ),
                    (
                        "Find the image in Pictures > Screenshots.",
                        "Each screenshot is saved as a PNG file with a number in its name.",
                    ),
                ],
            ),
            (
                "Using Snipping Tool",
                [
                    (
                        "Press Windows key + Shift + S.",
                        "A small toolbar appears at the top of the screen.",
                    ),
                    (
                        "Choose a snip shape.",
                        "Pick rectangle, freeform, window or full screen from the toolbar.",
                    ),
                    (
                        "Drag over the area you want.",
                        "The selection is copied to the clipboard as soon as you release the "
                        "mouse.",
                    ),
                    (
                        "Paste or save the snip.",
                        "Click the notification to edit and save it, or paste it straight "
                        "into a document with Ctrl + V.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000105",
        "How to Draw a Cartoon Cat",
        "A cartoon cat is built from a few simple shapes. Draw lightly in pencil first so you "
        "can erase the guide lines later.",
        ["Arts and Entertainment", "Artwork", "Drawing"],
        "test",
        True,
        [
            (
                "Sketching the Cat",
                [
                    (
                        "Draw a large circle for the head.",
                        "Leave room below it for the body.",
                    ),
                    (
                        "Add two triangles for the ears.",
                        "Place them on the top of the circle, slightly apart.",
                    ),
                    (
                        ".",
                        "Draw an oval under the head for the body, overlapping the circle a "
                        "little.",
                    ),
                    (
                        "Sketch the face.",
                        "Two big ovals for eyes, a small triangle nose and a curved W for the "
                        "mouth. ",
                    ),
                    (
                        "Ink the outline and erase the guides.",
                        "Go over the final lines with a pen, wait for the ink to dry, then "
                        "erase the pencil.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000106",
        "How to Start Running",
        "Running needs little equipment, but starting too fast is the most common reason "
        "beginners quit. Build up gradually.",
        ["Sports and Fitness", "Individual Sports", "Running"],
        "test",
        True,
        [
            (
                "Building the Habit",
                [
                    (
                        "Get a pair of comfortable running shoes.",
                        "Try them on in the afternoon, when your feet are slightly larger.",
                    ),
                    (
                        "Warm up with a brisk walk.",
                        "Walk for five minutes before every run to loosen your muscles.",
                    ),
                    (
                        "Alternate running and walking.",
                        "Start with one minute of easy running followed by two minutes of "
                        "walking, repeated for 20 minutes.",
                    ),
                    (
                        "Run at a conversational pace.",
                        "You should be able to speak in full sentences. If you cannot, slow down.",
                    ),
                    (
                        "Run three times a week.",
                        "Leave a rest day between runs so your body can recover.",
                    ),
                    (
                        "Increase your running time slowly.",
                        "Add no more than about 10 percent to your weekly total each week.",
                    ),
                    (
                        "Track your progress.",
                        "Write down each run in a notebook or app so you can see how far you "
                        "have come.",
                    ),
                ],
            ),
            (
                "Cooling Down",
                [
                    (
                        "Walk and stretch for five minutes after every run.",
                        "Gentle calf, hamstring and quadriceps stretches help prevent stiffness.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000107",
        "How to Meditate for Beginners",
        "Meditation is simply practice in paying attention. Five quiet minutes a day is "
        "enough to begin.",
        ["Philosophy and Religion", "Spirituality", "Meditation"],
        "",
        True,
        [
            (
                "Sitting Meditation",
                [
                    (
                        "Find a quiet place to sit.",
                        "Sit on a cushion or a chair with your back straight but relaxed.",
                    ),
                    (
                        "Set a timer for five minutes.",
                        "A timer stops you from checking the clock.",
                    ),
                    (
                        "Focus on your breathing.",
                        "Notice the air moving in and out of your nose without trying to "
                        "change it.",
                    ),
                    (
                        "Gently return when your mind wanders.",
                        "Wandering is normal. Each time you notice it, bring your attention "
                        "back to the breath.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000108",
        "How to Prepare for a Job Interview",
        "Preparation is what makes an interview feel like a conversation instead of an exam.",
        ["Work World", "Job Search", "Interviews"],
        "",
        True,
        [
            (
                "Researching the Company",
                [
                    (
                        "Read the company's website.",
                        "Learn what it sells, who its customers are and how it describes its "
                        "values.",
                    ),
                    (
                        "Reread the job description.",
                        "Highlight the skills it asks for and think of an example for each.",
                    ),
                    (
                        "Prepare answers to common questions.",
                        'Practice "Tell me about yourself" and "Why do you want this job?" out '
                        "loud.",
                    ),
                    (
                        "Write down questions to ask.",
                        "Ask about the team, the first months in the role, or how success is "
                        "measured.",
                    ),
                ],
            ),
        ],
    ),
    (
        "10000798",
        "How to Hang an Ironing Board",
        "An ironing board takes up a lot of floor space. Hanging it frees up room in a small "
        "laundry area or closet.",
        ["Home and Garden", "Housekeeping", "Home Organization"],
        "",
        True,
        [
            (
                "Hanging an Ironing Board Over a Door",
                [
                    (
                        "Find a door to hang your ironing board.",
                        "A laundry room or closet door that closes fully works best.",
                    ),
                    (
                        "Buy an over-the-door ironing board hanger.",
                        "Check that its hooks fit the thickness of your door.",
                    ),
                    (
                        "Hook the hanger over the door and hang the board.",
                        "Rest the legs of the folded board in the hanger's lower bracket.",
                    ),
                ],
            ),
        ],
    ),
    (
        "90000110",
        "How to Write to Your Local Representative",
        "Elected officials keep track of what their constituents write to them. A short, "
        "polite, personal letter is the most effective.",
        ["Education and Communications", "Social Activism", "Petitions and Letters"],
        "",
        True,
        [
            (
                "Writing the Letter",
                [
                    (
                        "Find out who represents you.",
                        "Look up your representative on your local government's website by "
                        "entering your address.",
                    ),
                    (
                        "State your issue in the first sentence.",
                        "Say which bill or local decision you are writing about and whether "
                        "you support or oppose it.",
                    ),
                    (
                        "Explain how it affects you.",
                        "A short personal story, like how the closing of your neighborhood "
                        "café would change your street, is more persuasive than statistics.",
                    ),
                    (
                        "Sign with your full name and address.",
                        "Offices often only answer letters from people who live in the district.",
                    ),
                ],
            ),
        ],
    ),
]

# Step images deliberately left out: a later step of the budget method (kept, image null).
MISSING_IMAGES = {"90000102_0_2"}


def _slug(goal: str) -> str:
    return goal.removeprefix("How to ").replace(" ", "-").replace("'", "")


def img_url(goal: str, n: int) -> str:
    """A URL in wikiHow's image-URL pattern (constructed; not a real image)."""
    name = f"{_slug(goal)}-Step-{n}.jpg"
    h = hashlib.md5(name.encode()).hexdigest()
    return f"https://www.wikihow.com/images/thumb/{h[0]}/{h[:2]}/{name}/v4-460px-{name}"


def build_lines() -> tuple[list[str], dict[str, tuple[str, str]]]:
    """The JSON lines, and step_id -> (image subfolder, label) for every image to write."""
    lines: list[str] = []
    images: dict[str, tuple[str, str]] = {}
    for file_id, goal, description, hierarchy, folder, with_mid, methods in ARTICLES:
        out_methods: list[dict[str, Any]] = []
        n = 0
        for m, (name, steps) in enumerate(methods):
            out_steps = []
            for s, (headline, body) in enumerate(steps):
                n += 1
                step_id = f"{file_id}_{m}_{s}"
                out_steps.append(
                    {
                        "headline": headline,
                        "description": body,
                        "img": img_url(goal, n),
                        "img_license": LICENSE,
                        "step_id": step_id,
                    }
                )
                if step_id not in MISSING_IMAGES:
                    images[step_id] = (folder, step_id)
            method: dict[str, Any] = {"name": name}
            if with_mid:
                method["method_id"] = f"{file_id}_{m}"
            method["steps"] = out_steps
            out_methods.append(method)
        article = {
            "file_id": file_id,
            "goal": goal,
            "goal_description": description,
            "category_hierarchy": hierarchy,
            "methods": out_methods,
        }
        lines.append(json.dumps(article))
    return lines, images


def main(out_dir: str | Path = DEFAULT_OUT) -> Path:
    """(Re)write the sample under ``out_dir``; returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines, images = build_lines()
    (out / TEXT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = out / IMAGES_DIR
    if root.exists():
        shutil.rmtree(root)
    for step_id, (folder, label) in sorted(images.items()):
        target = root / folder if folder else root
        target.mkdir(parents=True, exist_ok=True)
        data = make_image(f"wikihow/{step_id}", 256, 192, fmt="PNG", label=label)
        (target / f"{step_id}.png").write_bytes(data)
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT)
