"""Realistic synthetic mention streams shared by the benchmarks: reproducible by seed, generated lazily.

A stream looks like what a busy police service's watches return: mentions of its accounts,
its campaign hashtags, keyword hits and replies to its posts, on four platforms; short and long
texts with emoji, hashtags, @handles and links; replies in threads; a mix of praise, questions
and complaints; now and then a backlash wave of negative replies on one of our posts, a person
in crisis or a crime tip; a few posts delivered twice by overlapping polls and a few late ones.

Everything comes from one `random.Random(seed)`, so the same spec gives the same stream on
every machine. Mentions are produced one at a time with bounded state (a few thousand recent
threads and ids), so a million of them never sit in memory at once.

    from streams import StreamSpec, mentions, json_lines, write_jsonl
    for line in json_lines(StreamSpec(n=200_000, seed=7)): ...
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")

START = datetime(2026, 11, 1, tzinfo=timezone.utc)

# watch id -> (kind, {platform: handle or tag})
WATCHES: dict[str, tuple[str, dict[str, str]]] = {
    "metro-police": ("account", {"x": "MetroPolice", "bluesky": "metropolice.bsky.social",
                                 "mastodon": "metropolice@police.social", "instagram": "metropolice"}),
    "const-daniels": ("account", {"x": "ConstDaniels", "bluesky": "constdaniels.bsky.social",
                                  "instagram": "const.daniels"}),
    "sgt-rivera": ("account", {"x": "SgtRivera", "bluesky": "sgtrivera.bsky.social", "instagram": "sgt.rivera"}),
    "officer-chen": ("account", {"x": "OfficerChen", "bluesky": "officerchen.bsky.social"}),
    "metrocares": ("hashtag", {"x": "MetroCares", "bluesky": "MetroCares", "instagram": "MetroCares"}),
    "hackmps": ("hashtag", {"x": "HackMPS", "bluesky": "HackMPS", "mastodon": "HackMPS"}),
    "metro-police-query": ("query", {"x": "metro police", "bluesky": "metro police", "mastodon": "metro police"}),
    "food-drive-post": ("post", {"x": "1860000000000000001", "instagram": "C0fooddrive"}),
    "lipsync-post": ("post", {"x": "1860000000000000002", "instagram": "C0lipsync"}),
}
# Share of traffic per watch (accounts and hashtags are busiest).
WATCH_WEIGHTS = {"metro-police": 30, "const-daniels": 14, "sgt-rivera": 12, "officer-chen": 6, "metrocares": 12,
                 "hackmps": 5, "metro-police-query": 13, "food-drive-post": 4, "lipsync-post": 4}
PLATFORM_WEIGHTS = {"x": 45, "bluesky": 25, "instagram": 20, "mastodon": 10}

SUBJECTS = [
    "the road safety talk at my kid's school", "the new crosswalk on Elm", "the parade route",
    "response times in the east end", "the bike thefts near the library", "the community BBQ",
    "the speed trap on Queen St", "the noise complaints on Elm St",
    "the youth league", "the lost and found desk", "the traffic lights at King & 3rd", "the non-emergency line",
    "the station on 5th", "the food drive", "the lip-sync video", "the new patrol cars", "the car break-ins downtown",
    "the winter coat drive", "the school crossing guards", "the transit station", "the protest on Saturday",
    "the street festival", "the fireworks ban", "the e-scooter rules", "the missing dog case", "the bridge closure",
]
POSITIVE = [
    "thank you so much for {s}", "great work on {s}", "love this, well done everyone", "so proud of our city today",
    "huge thanks to the officers who helped with {s}", "brilliant idea, {s} made a real difference",
    "really appreciate {s}, kindness matters", "amazing effort on {s}, the volunteers were wonderful",
    "this made my day", "best community event this year", "happy to see officers out walking and talking to people",
    "grateful for the quick help this morning", "fantastic news about {s}",
]
NEGATIVE = [
    "this is a disgrace", "absolutely pathetic response to {s}", "{s} is a joke, nobody is accountable",
    "worst handling of {s} I have ever seen", "so embarrassing, delete this", "tone-deaf and cringe, take it down",
    "waste of taxpayer money on {s}", "you should be ashamed of {s}", "terrible, nobody answered for an hour",
    "I'm furious about {s}", "useless, third week in a row and nothing done", "shameful. do better",
    "this is awful and frankly insulting", "stop posting memes and fix {s}",
]
NEUTRAL = [
    "is the station open on Sundays?", "what's the number for the non-emergency line", "any update on {s}?",
    "road closure on 5th for {s}, plan ahead folks", "when does sign-up open for {s}", "reminder: {s} starts at 9",
    "does anyone know where {s} is this year", "saw a post about {s} earlier", "is {s} still happening tomorrow",
    "the report on {s} is out", "question about {s}", "heading to {s} later",
]
CONNECTORS = ["", ".", "!", " -", ",", "...", " and"]
EXTRA_SENTENCES = [
    "Been living here twenty years and this is the first time I've written in.",
    "My neighbours feel the same way, we talked about it at the meeting last night.",
    "Not trying to start anything, just want an answer.",
    "Posted this in the community group too.",
    "Please share so more people see it.",
    "Shout out to the two officers on the bikes.",
    "It's been like this since the summer and it keeps getting worse.",
    "Anyway, have a good weekend everyone.",
]
EMOJI_POS = ["👏", "❤️", "💙", "😊", "🙏", "🐶", "☕", "🎉", "🙌", "💯"]
EMOJI_NEG = ["🤡", "🙄", "😡", "👎", "🤦", "😤", "💀"]
EMOJI_NEU = ["🚓", "📍", "🤔", "👀", "🚧"]
FREE_TAGS = ["MetroCares", "HackMPS", "RoadSafety", "CommunityFirst", "Downtown", "WinterDrive", "YouthLeague"]
CRISIS = [
    "I can't do this anymore, I don't want to be here", "honestly I want to die, nobody would notice",
    "I'm going to end my life tonight", "everyone is better off without me",
]
TIPS = [
    "I have information about the break-in on Elm, DM me", "I saw two guys running from the store, partial plate ABC",
    "anonymous tip: the stolen bikes are in the garage on 4th", "I know who broke the car windows on Queen",
]
SYLLABLES = ["al", "ex", "sam", "jo", "dan", "ri", "ley", "mor", "gan", "kay", "lee", "pat", "ro", "bin", "sky",
             "chris", "dee", "fran", "kie", "mel", "nat", "ari", "tay", "lor", "quinn", "dev", "on", "max", "zo",
             "ella"]
SUFFIXES = ["", "", "_k", "_city", "88", "_runs", "writes", "_t", "2010", "_nb", "x", "_local", "_dad", "_mum",
            "_photo", "_dev", "_eats", "_reads", "99", "_on_bikes"]


@dataclass(frozen=True)
class StreamSpec:
    """What stream to generate. The defaults describe a busy service (40,000 mentions a day)."""

    n: int
    seed: int = 7
    start: datetime = START
    per_day: float = 40_000.0  # mean arrival rate of ordinary mentions
    duplicate_share: float = 0.03  # re-delivered by overlapping polls
    late_share: float = 0.05  # created up to `max_late_s` before the newest post already seen
    max_late_s: float = 120.0
    wave_every_s: float = 8 * 3600.0  # one backlash wave of negative replies per ~8 h of event time
    wave_size: int = 40
    wave_duration_s: float = 20 * 60.0
    crisis_share: float = 1 / 25_000
    tip_share: float = 1 / 10_000
    authors: int = 60_000  # distinct people who write to the service


def _author_pool(rng: random.Random, size: int) -> list[str]:
    pool: list[str] = []
    for i in range(size):
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
        pool.append(f"{name}{rng.choice(SUFFIXES)}{i % 97 if rng.random() < 0.3 else ''}")
    return pool


class _Generator:
    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.authors = _author_pool(self.rng, spec.authors)
        self.watch_ids = list(WATCH_WEIGHTS)
        self.watch_cum = list(_cumulative(WATCH_WEIGHTS.values()))
        self.platforms = list(PLATFORM_WEIGHTS)
        self.platform_cum = list(_cumulative(PLATFORM_WEIGHTS.values()))
        self.t = spec.start.timestamp()
        self.serial = 0
        # (platform, id, url, watch, kind) of recent posts that replies can go to: bounded.
        self.threads: deque[tuple[str, str, str, str, str]] = deque(maxlen=2_000)
        self.recent: deque[dict[str, Any]] = deque(maxlen=500)  # what a duplicate re-delivers
        self.next_wave = spec.start.timestamp() + self.rng.uniform(0.3, 1.0) * spec.wave_every_s
        self.wave: tuple[float, tuple[str, str, str, str, str]] | None = None  # (end, thread root)

    # -- ids and urls, in each platform's shape --------------------------------------------

    def _new_id(self, platform: str, author: str) -> tuple[str, str]:
        self.serial += 1
        n = self.serial
        if platform == "x":
            pid = str(1_860_000_000_000_000_000 + n * 4096 + self.rng.randrange(4096))
            return pid, f"https://x.com/{author}/status/{pid}"
        if platform == "bluesky":
            rkey = _base32(n * 7919 + 3_000_000_000_000)
            return (f"at://did:plc:{_base32(hash_author(author))}/app.bsky.feed.post/{rkey}",
                    f"https://bsky.app/profile/{author}.bsky.social/post/{rkey}")
        if platform == "mastodon":
            pid = str(113_000_000_000_000_000 + n * 1024)
            return pid, f"https://police.social/@{author}/{pid}"
        pid = str(17_900_000_000_000_000 + n)
        return pid, f"https://www.instagram.com/p/{_base32(n * 104729)}/"

    # -- text -------------------------------------------------------------------------------

    def _sentence(self, mood: str) -> str:
        rng = self.rng
        pool = POSITIVE if mood == "pos" else NEGATIVE if mood == "neg" else NEUTRAL
        text = rng.choice(pool).format(s=rng.choice(SUBJECTS))
        return text[0].upper() + text[1:] if rng.random() < 0.6 else text

    def _text(self, mood: str, at: str | None, tag: str | None, special: str | None = None) -> str:
        rng = self.rng
        parts: list[str] = []
        if at and rng.random() < 0.85:
            parts.append(f"@{at}")
        parts.append(special or self._sentence(mood))
        r = rng.random()
        if r < 0.25:  # a second clause of the same mood
            if not parts[-1].endswith((".", "?", "!")):
                parts[-1] += rng.choice(CONNECTORS)
            parts.append(self._sentence(mood))
        elif r < 0.33:  # a longer post
            if not parts[-1].endswith((".", "?", "!")):
                parts[-1] += "."
            parts.extend(rng.sample(EXTRA_SENTENCES, rng.choice((1, 1, 2, 3))))
        if tag:
            parts.append(f"#{tag}")
        if rng.random() < 0.12:
            parts.append(f"#{rng.choice(FREE_TAGS)}")
        if rng.random() < 0.35:
            emoji = EMOJI_POS if mood == "pos" else EMOJI_NEG if mood == "neg" else EMOJI_NEU
            parts.append(rng.choice(emoji) * rng.choice((1, 1, 1, 2, 3)))
        if rng.random() < 0.08:
            parts.append(f"https://example.org/n/{rng.randrange(10**6)}")
        if at and rng.random() < 0.1:
            parts.append(f"cc @{rng.choice(self.authors)}")
        return " ".join(parts)

    # -- one mention -------------------------------------------------------------------------

    def _pick_watch(self) -> str:
        return self.watch_ids[_pick(self.rng, self.watch_cum)]

    def _mention(self, created: float, *, wave_root: tuple[str, str, str, str, str] | None = None) -> dict[str, Any]:
        rng, spec = self.rng, self.spec
        author = rng.choice(self.authors)
        special = None
        if wave_root is not None:
            platform, root_id, root_url, watch, kind = wave_root
            mood = "neg" if rng.random() < 0.85 else "neu"
            in_reply_to, thread = root_id, root_id
        else:
            watch = self._pick_watch()
            kind, targets = WATCHES[watch]
            platforms = [p for p in self.platforms if p in targets]
            platform = rng.choice(platforms) if rng.random() < 0.3 else self._pick_platform(platforms)
            r = rng.random()
            mood = "pos" if r < 0.30 else "neg" if r < 0.52 else "neu"
            in_reply_to = thread = None
            if kind == "post" or (self.threads and rng.random() < 0.25):
                candidates = [t for t in list(self.threads)[-50:] if t[0] == platform]
                if candidates:
                    root = rng.choice(candidates)
                    in_reply_to, thread = root[1], root[1]
                    watch, kind = root[3], root[4]
            r = rng.random()
            if r < spec.crisis_share:
                special, mood = rng.choice(CRISIS), "neg"
            elif r < spec.crisis_share + spec.tip_share:
                special, mood = rng.choice(TIPS), "neu"
        watch_kind, targets = WATCHES[watch]
        target = targets.get(platform, next(iter(targets.values())))
        at = target if watch_kind == "account" else None
        tag = target if watch_kind == "hashtag" else None
        pid, url = self._new_id(platform, author)
        if thread is None and rng.random() < 0.25:
            self.threads.append((platform, pid, url, watch, kind))
        return {
            "platform": platform,
            "id": pid,
            "url": url,
            "author": author if platform != "bluesky" else f"{author}.bsky.social",
            "text": self._text(mood, at, tag, special),
            "lang": "en",
            "created_at": _iso(created),
            "watch": watch,
            "watch_kind": kind,
            "in_reply_to": in_reply_to,
            "thread": thread,
            "metrics": {"likes": int(rng.expovariate(0.3)), "reposts": int(rng.expovariate(1.5)),
                        "replies": int(rng.expovariate(2.0))},
        }

    def _pick_platform(self, allowed: list[str]) -> str:
        p = self.platforms[_pick(self.rng, self.platform_cum)]
        return p if p in allowed else allowed[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng, spec = self.rng, self.spec
        base_rate = spec.per_day / 86_400.0
        wave_rate = spec.wave_size / spec.wave_duration_s
        for _ in range(spec.n):
            if self.recent and rng.random() < spec.duplicate_share:
                yield rng.choice(self.recent)  # the same post again, as an overlapping poll returns it
                continue
            in_wave = self.wave is not None and self.t < self.wave[0]
            rate = base_rate + (wave_rate if in_wave else 0.0)
            self.t += rng.expovariate(rate)
            if self.t >= self.next_wave and self.wave is None:
                self._start_wave()
            if self.wave is not None and self.t >= self.wave[0]:
                self.wave = None
            created = self.t - rng.uniform(0, spec.max_late_s) if rng.random() < spec.late_share else self.t
            if self.wave is not None and rng.random() < wave_rate / (base_rate + wave_rate):
                mention = self._mention(created, wave_root=self.wave[1])
            else:
                mention = self._mention(created)
            self.recent.append(mention)
            yield mention

    def _start_wave(self) -> None:
        watch = self.rng.choice(["lipsync-post", "const-daniels", "metro-police", "food-drive-post"])
        kind, targets = WATCHES[watch]
        platform = self.rng.choice([p for p in targets if p in ("x", "instagram", "bluesky")] or list(targets))
        pid, url = self._new_id(platform, "metropolice")
        self.wave = (self.t + self.spec.wave_duration_s, (platform, pid, url, watch, "post"))
        self.next_wave = self.t + self.rng.uniform(0.5, 1.5) * self.spec.wave_every_s


def mentions(spec: StreamSpec) -> Iterator[dict[str, Any]]:
    """The stream as contract-shaped dicts (the JSON Lines replay format), one at a time."""
    return iter(_Generator(spec))


def json_lines(spec: StreamSpec) -> Iterator[str]:
    """The stream as JSON text, one mention per string, no newline."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for m in mentions(spec):
        yield dumps(m)


def write_jsonl(path: str | Path, spec: StreamSpec) -> int:
    """Write the stream as a replay file; returns the number of lines written."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for line in json_lines(spec):
            handle.write(line)
            handle.write("\n")
            count += 1
    return count


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter), like the poll cycles of a daemon."""
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _cumulative(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    x = rng.random() * cumulative[-1]
    for i, c in enumerate(cumulative):
        if x < c:
            return i
    return len(cumulative) - 1


def _base32(n: int) -> str:
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    out = []
    n = abs(n)
    while True:
        n, r = divmod(n, 32)
        out.append(alphabet[r])
        if not n:
            return "".join(reversed(out))


def hash_author(author: str) -> int:
    """A stable (not per-process salted) number for an author, for did:plc-like ids."""
    h = 1469598103934665603
    for ch in author.encode():
        h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFF
    return h


def _iso(ts: float) -> str:
    moment = datetime.fromtimestamp(math.floor(ts * 1000) / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(spec: StreamSpec) -> dict[str, Any]:
    """The spec as plain JSON data, for result files."""
    return {
        "n": spec.n, "seed": spec.seed, "start": _iso(spec.start.timestamp()), "per_day": spec.per_day,
        "duplicate_share": spec.duplicate_share, "late_share": spec.late_share, "wave_every_s": spec.wave_every_s,
        "wave_size": spec.wave_size,
    }


def stats(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What a stream contains (for README examples and the generator's own test)."""
    n = length = replies = emoji = tags = handles = 0
    keys: set[tuple[str, str]] = set()
    first = last = None
    for m in items:
        n += 1
        text = m["text"]
        length += len(text)
        replies += m["in_reply_to"] is not None
        emoji += any(ord(c) > 0x2000 for c in text)
        tags += "#" in text
        handles += "@" in text
        keys.add((m["platform"], m["id"]))
        ts = datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")).timestamp()
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
    days = ((last or 0) - (first or 0)) / 86_400 if n else 0.0
    return {"mentions": n, "unique": len(keys), "mean_chars": round(length / n, 1) if n else 0,
            "replies": replies, "with_emoji": emoji, "with_hashtag": tags, "with_handle": handles,
            "days": round(days, 2)}



def backlash_wave(rng: random.Random, platform: str, root_id: str, *, size: int, created_ts: float,
                  watch: str = "lipsync-post") -> list[dict[str, Any]]:
    """`size` strongly negative replies to one of our posts, all created at `created_ts` (for latency runs)."""
    out = []
    for i in range(size):
        author = f"{rng.choice(SYLLABLES)}{rng.choice(SYLLABLES)}{rng.randrange(1000)}"
        text = rng.choice(NEGATIVE).format(s=rng.choice(SUBJECTS))
        out.append({
            "platform": platform, "id": f"{root_id}-r{i}", "url": f"https://x.com/{author}/status/{root_id}{i}",
            "author": author, "text": f"{text[0].upper()}{text[1:]} {rng.choice(EMOJI_NEG)}", "lang": "en",
            "created_at": _iso(created_ts), "watch": watch, "watch_kind": "post",
            "in_reply_to": root_id, "thread": root_id, "metrics": {"likes": 0, "reposts": 0, "replies": 0},
        })
    return out
