"""Replay files: good lines become mentions; bad lines are reported by number and skipped."""

from __future__ import annotations

import json

from listener.replay import ReplayReader


def test_bad_lines_are_reported_and_skipped(tmp_path):
    good = {"platform": "x", "id": "1", "text": "fine", "created_at": "2026-11-26T10:00:00Z"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"platform": "x", "id": "2", "created_at": "2026-11-26T10:00:00Z"}),  # no text
        json.dumps(dict(good, id="3", created_at="yesterday")),
        json.dumps(dict(good, id="4", created_at="2026-11-26T10:00:00")),  # no zone
        "",
        json.dumps(dict(good, id="5", surprise={"kept": True})),
        "[1, 2]",
    ]
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join(lines) + "\n")
    seen = []
    reader = ReplayReader(path, on_problem=seen.append)
    mentions = list(reader)
    assert [m.id for m in mentions] == ["1", "5"]
    assert mentions[1].extra == {"surprise": {"kept": True}}
    assert reader.skipped == 5
    assert [p.line for p in seen] == [2, 3, 4, 5, 8]
    assert "not valid JSON" in seen[0].message
    assert "missing required field: text" in seen[1].message
    assert "not an ISO 8601 timestamp" in seen[2].message
    assert "no time zone" in seen[3].message
    assert str(seen[0]).startswith(f"{path}:2: ")


def test_offsets_are_normalised_to_utc(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"platform": "instagram", "id": "1", "text": "t",
                                "created_at": "2026-08-20T18:30:00+0200"}) + "\n")
    (m,) = list(ReplayReader(path))
    assert m.created_at.isoformat() == "2026-08-20T16:30:00+00:00"
