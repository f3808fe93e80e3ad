"""The demo scenario: four hours around a city police service's accounts, generated reproducibly.

Run `python -m listener.demo.scenario > listener/demo/scenario.jsonl` to regenerate the
bundled file; a test checks the two agree. What happens, in event time from 14:00Z:

- all afternoon: ordinary chatter mentioning the service, three officers and #MetroCares;
- 14:40: the service posts thanks for a food drive; a wave of warm replies follows
  (must NOT raise a backlash alert);
- 15:30: Const. Daniels' lip-sync video on Instagram and X draws a wave of criticism
  (must raise a backlash alert within minutes);
- 16:20: someone in crisis writes to Sgt. Rivera (must alert at once, critical);
- 17:05: someone offers information about a break-in (a tip, routed apart).
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

START = datetime(2026, 11, 20, 14, 0, tzinfo=timezone.utc)
SEED = 20261120

OFFICERS = {
    # watch id: (platform handles, display)
    "metro-police": {"x": "MetroPolice", "instagram": "metropolice", "bluesky": "metropolice.bsky.social"},
    "const-daniels": {"x": "ConstDaniels", "instagram": "const.daniels", "bluesky": "constdaniels.bsky.social"},
    "sgt-rivera": {"x": "SgtRivera", "instagram": "sgt.rivera", "bluesky": "sgtrivera.bsky.social"},
    "officer-chen": {"x": "OfficerChen", "instagram": "officer.chen", "bluesky": "officerchen.bsky.social"},
}
CAMPAIGN = "MetroCares"

FIRST = ["alex", "sam", "jordan", "taylor", "casey", "riley", "morgan", "jamie", "drew", "quinn", "avery",
         "devon", "kim", "lee", "pat", "robin", "sky", "chris", "dana", "frankie", "jo", "mel", "nat", "ari"]
LAST = ["_k", "_city", "88", "_elmst", "_runs", "writes", "_t", "2010", "_on_bikes", "_nb", "x", "_local",
        "_mtl", "_yyz", "_dad", "_mum", "_photo", "_dev", "_eats", "_reads"]

CHATTER = [
    ("{at} thanks for the road safety talk at my kid's school today", 0),
    ("{at} is the downtown station open on Sundays?", 0),
    ("Saw {at} at the farmers market, good to see officers out walking", 0),
    ("{at} great work on the missing dog case, she's home safe 🐶", 0),
    ("{at} why is there always a speed trap on Queen St and never on my street where people actually race", 0),
    ("{at} what's the number for non-emergency again?", 0),
    ("Waited 40 minutes on hold with the non-emergency line. {at} this needs fixing", 0),
    ("{at} any update on the bike thefts near the library?", 0),
    ("Loved the community BBQ {at} 👏 #{tag}", 0),
    ("#{tag} event at Riverside Park was well organised, kids loved the horses", 0),
    ("Not sure what #{tag} is supposed to achieve but ok", 0),
    ("{at} road closure on 5th for the parade, plan ahead folks", 0),
    ("{at} your officers were kind to my elderly neighbour today, thank you", 0),
    ("Honestly {at} the response time in the east end is getting worse", 0),
    ("{at} reminder that the bridge is icy this morning", 0),
    ("Good chat with {at} about the new crosswalk #{tag}", 0),
    ("{at} lost wallet handed in at the front desk?? fingers crossed", 0),
    ("{at} when does the youth league sign up open", 0),
    ("#{tag} volunteers were lovely, and the hot chocolate helped ☕", 0),
    ("{at} traffic lights out at King & 3rd, someone should direct traffic", 0),
    ("Meh, {at} posting memes again", 0),
    ("{at} the noise complaints on Elm St are being ignored. Third week in a row.", 0),
]

THANKS = [
    "This is wonderful, thank you to everyone who helped 💙",
    "Amazing work! So proud of our community",
    "Thank you officers, this means a lot to families this winter",
    "Love this. Kindness matters ❤️",
    "Great to see. Thank you for organising!",
    "My mum got a hamper last year, thank you so much",
    "Brilliant initiative, happy to donate next time",
    "Well done team 👏👏",
    "This made my day, thank you",
    "So good to see officers giving back. Thank you!",
    "Fantastic effort, the volunteers were great",
    "Thank you! We dropped off tins this morning 😊",
    "Wonderful! Grateful for everyone involved",
    "Beautiful work, thanks for caring about the neighbourhood",
    "Yes!! Proud of this city today",
    "Heartwarming. Thanks to the officers and the food bank staff",
]

CRITICISM = [
    "This is embarrassing. Delete this.",
    "Is this what my taxes pay for? Unbelievable",
    "Tone deaf after what happened on Dundas last week. Disgraceful.",
    "Cringe. Absolutely cringe. Do your actual job",
    "People are waiting hours for help and you're making lip sync videos?? Shameful",
    "Take this down. It's insulting to the families",
    "Worst PR move I've seen this year. Awful",
    "Not funny. Not cute. Pathetic.",
    "You should be ashamed. Nobody wanted this",
    "Wow. Just wow. Terrible judgement",
    "My car was broken into and nobody came, but sure, dance for the camera 🙄",
    "This is a disgrace to the uniform",
    "Unprofessional and gross. Who approved this?",
    "Horrible timing. Read the room",
    "Stop wasting time on TikTok trends and answer your phones",
    "Embarrassing for the whole department. Delete it",
    "this is so bad lol. who signed off on this",
    "I'm angry. A kid died and this is what you post?",
]

DEFENDERS = [
    "Lighten up people, officers are allowed to have fun",
    "Honestly it's a bit of fun, I liked it",
    "Meh, not my thing but whatever",
    "Haha the bit at the end 😂",
]

CRISIS = ("@SgtRivera you helped my brother once. I can't do this anymore. "
          "I don't want to be here tomorrow and nobody would even notice")
TIP = ("@MetroPolice I have information about the pharmacy break in on Elm St. "
       "I saw two guys loading a blue van around 3am, partial plate BKR 4")


def _author(rng: random.Random) -> str:
    return rng.choice(FIRST) + rng.choice(LAST)


def _mention(platform: str, ident: str, author: str, text: str, when: datetime, watch: str, kind: str,
             thread: str | None = None, parent: str | None = None, likes: int = 0) -> dict[str, Any]:
    urls = {
        "x": f"https://x.com/{author}/status/{ident}",
        "instagram": f"https://www.instagram.com/p/{ident}/",
        "bluesky": f"https://bsky.app/profile/{author}.bsky.social/post/{ident}",
    }
    return {
        "platform": platform,
        "id": ident,
        "url": urls[platform],
        "author": author if platform != "bluesky" else f"{author}.bsky.social",
        "text": text,
        "lang": "en",
        "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "watch": watch,
        "watch_kind": kind,
        "in_reply_to": parent,
        "thread": thread,
        "metrics": {"likes": likes, "reposts": 0, "replies": 0},
    }


def generate() -> Iterator[dict[str, Any]]:
    rng = random.Random(SEED)
    out: list[dict[str, Any]] = []
    counter = iter(range(10**6))

    def next_id(platform: str) -> str:
        n = next(counter)
        if platform == "x":
            return str(1990000000000000000 + n * 7919)
        if platform == "instagram":
            return f"1790{n:013d}"
        return f"3m{n:011d}"

    # Ordinary chatter: about one mention every 90 s over four hours.
    t = START
    end = START + timedelta(hours=4)
    while t < end:
        t += timedelta(seconds=rng.randint(20, 160))
        platform = rng.choice(["x", "x", "bluesky", "instagram"])
        watch = rng.choice(list(OFFICERS))
        handle = OFFICERS[watch][platform]
        text, _ = rng.choice(CHATTER)
        text = text.format(at=f"@{handle}", tag=CAMPAIGN)
        kind = "hashtag" if f"#{CAMPAIGN}" in text and "@" not in text else "account"
        ident = next_id(platform)
        out.append(_mention(platform, ident, _author(rng), text, t, watch if kind == "account" else "metrocares",
                            kind, thread=None, likes=rng.randint(0, 12)))

    # 14:40 the food drive post draws a wave of thanks (replies in one thread).
    root = next_id("x")
    t = START + timedelta(minutes=40)
    for _ in range(38):
        t += timedelta(seconds=rng.randint(10, 60))
        text = "@MetroPolice " + rng.choice(THANKS)
        out.append(_mention("x", next_id("x"), _author(rng), text, t, "food-drive-post", "post",
                            thread=root, parent=root, likes=rng.randint(0, 30)))

    # 15:30 the lip-sync video draws criticism on Instagram (comments on our own media) and X.
    media = next_id("instagram")
    tweet = next_id("x")
    t = START + timedelta(minutes=90)
    for i in range(46):
        t += timedelta(seconds=rng.randint(8, 45))
        text = rng.choice(DEFENDERS) if i % 7 == 3 else rng.choice(CRITICISM)
        if i % 2 == 0:
            out.append(_mention("instagram", next_id("instagram"), _author(rng), text, t, "daniels-lipsync",
                                "post", thread=media, parent=media, likes=rng.randint(0, 80)))
        else:
            out.append(_mention("x", next_id("x"), _author(rng), "@ConstDaniels " + text, t,
                                "daniels-lipsync-x", "post", thread=tweet, parent=tweet,
                                likes=rng.randint(0, 80)))

    # 16:20 a person in crisis writes to Sgt. Rivera.
    out.append(_mention("x", next_id("x"), "quiet_hours_99", CRISIS, START + timedelta(minutes=140, seconds=13),
                        "sgt-rivera", "account"))
    # 17:05 a tip about a break-in.
    out.append(_mention("x", next_id("x"), "elmst_nightowl", TIP, START + timedelta(minutes=185, seconds=41),
                        "metro-police", "account"))

    out.sort(key=lambda m: m["created_at"])
    yield from out


def main() -> None:
    for mention in generate():
        sys.stdout.write(json.dumps(mention, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
