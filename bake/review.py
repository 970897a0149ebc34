"""A pull-request review of a rollout: the Terraform plan and the lock change, per pool.

Input: ``terraform show -json PLAN`` and the lock file before (the PR's base) and after.
Output: Markdown for a sticky PR comment (found again by ``MARKER``), or the same as JSON.

Pools are tied to plan resources in this order: a launch template / configuration whose
``image_id`` (before or after) is an AMI the lock names for the pool; the pool's own address in
this tool's stack (``aws_autoscaling_group.cpu``: the scheme of ``bake.model.stack``, exactly);
for a plan of another layout, an address or name containing the pool's name as a whole word
(the longest such pool wins); a resource whose configuration references one already tied (an
ASG using a pool's launch template).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bake.errors import UsageError
from bake.first_start import FirstRead
from bake.model.config import BakeConfig
from bake.model.lock import LockData, LockEntry
from bake.model.refs import parse_reference
from bake.model.stack import (
    AUTOSCALING_GROUP,
    EBS_FAST_SNAPSHOT_RESTORE,
    EKS_NODE_GROUP,
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    pool_addresses,
)

MARKER = "<!-- eks-image-bake:review -->"
COUNTED = ("create", "update", "replace", "destroy", "import")
IMAGE_TYPES = {LAUNCH_TEMPLATE, LAUNCH_CONFIGURATION, "aws_instance"}
GROUP_TYPES = {AUTOSCALING_GROUP}
NODEGROUP_TYPES = {EKS_NODE_GROUP}


# ---------------------------------------------------------------------------- plan


@dataclass
class ResourceChange:
    address: str
    type: str
    action: str  # create | update | replace | destroy | read | no-op | forget
    importing: bool
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    after_unknown: dict[str, Any]
    reason: str | None = None
    pool: str | None = None

    @property
    def config_address(self) -> str:
        """The address without instance keys (``aws_x.y[0]`` -> ``aws_x.y``)."""
        return re.sub(r"\[[^\]]*\]", "", self.address)


def _action(actions: list[str]) -> str:
    a = list(actions)
    if a in (["delete", "create"], ["create", "delete"]):
        return "replace"
    if a == ["delete"]:
        return "destroy"
    if len(a) == 1 and a[0] in ("create", "update", "read", "no-op", "forget"):
        return a[0]
    return "+".join(a) or "no-op"


def parse_plan(plan: dict[str, Any]) -> list[ResourceChange]:
    if not isinstance(plan, dict) or "format_version" not in plan:
        raise UsageError("the plan is not `terraform show -json` output (no format_version)")
    out = []
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode", "managed") != "managed":
            continue
        ch = rc.get("change") or {}
        out.append(ResourceChange(
            address=rc["address"], type=rc.get("type", ""), action=_action(ch.get("actions") or ["no-op"]),
            importing=bool(ch.get("importing")), before=ch.get("before"), after=ch.get("after"),
            after_unknown=ch.get("after_unknown") or {}, reason=rc.get("action_reason"),
        ))
    return out


def _planned_resources(module: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not module:
        return out
    for r in module.get("resources") or []:
        out[r["address"]] = r.get("values") or {}
    for child in module.get("child_modules") or []:
        out.update(_planned_resources(child))
    return out


def _references(module: dict[str, Any] | None, prefix: str = "") -> dict[str, set[str]]:
    """``{resource address: {addresses of resources its configuration refers to}}``."""
    out: dict[str, set[str]] = {}
    if not module:
        return out
    for r in module.get("resources") or []:
        refs: set[str] = set()
        _collect_refs(r.get("expressions") or {}, refs)
        out[prefix + r["address"]] = {prefix + ref for ref in refs}
    for name, call in (module.get("module_calls") or {}).items():
        out.update(_references(call.get("module"), f"{prefix}module.{name}."))
    return out


_REF = re.compile(r"^((?:data\.)?[a-z0-9_]+\.[A-Za-z0-9_-]+)")


def _collect_refs(node: Any, refs: set[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "references" and isinstance(v, list):
                for ref in v:
                    m = _REF.match(str(ref))
                    if m and not ref.startswith(("var.", "local.", "module.", "each.", "count.", "path.")):
                        refs.add(m[1])
            else:
                _collect_refs(v, refs)
    elif isinstance(node, list):
        for v in node:
            _collect_refs(v, refs)


# ---------------------------------------------------------------------------- lock


@dataclass
class ImageChange:
    image: str  # registry/repository
    change: str  # added | removed | changed
    before: str | None  # "TAG@DIGEST"
    after: str | None


@dataclass
class PoolReview:
    pool: str
    status: str  # new | changed | unchanged | removed
    ami_before: str | None
    ami_after: str | None
    base_before: str | None
    base_after: str | None
    images: list[ImageChange] = field(default_factory=list)
    pinned: str | None = None
    resources: list[str] = field(default_factory=list)
    rollout: str = "none"  # instance-refresh | new-nodes-only | node-group-update | none
    rollout_detail: str = ""
    plan_images: list[dict[str, Any]] = field(default_factory=list)  # image_id changes the plan makes
    warnings: list[str] = field(default_factory=list)
    # How a new node first reads the cache after this plan (bake.first_start): figures and lines.
    first_read: dict[str, Any] = field(default_factory=dict)
    first_read_lines: list[str] = field(default_factory=list)
    # A distributed pool's AMI in each region, before and after ({region, before, after}).
    regions: list[dict[str, str | None]] = field(default_factory=list)
    # The pool's EC2NodeClass (`bake karpenter`) from the base lock to this one, a unified diff.
    karpenter_diff: str | None = None


def region_amis(old: LockEntry | None, new: LockEntry | None) -> list[dict[str, str | None]]:
    """The AMI in every region either entry has one in, when either has copies; else []."""
    if not ((old and old.copies) or (new and new.copies)):
        return []
    regions = {e.region for e in (old, new) if e} | {r for e in (old, new) if e for r in (e.copies or {})}
    ordered = sorted(regions, key=lambda r: (r != (new or old).region, r))  # type: ignore[union-attr]
    return [{"region": r, "before": old.ami_in(r) if old else None, "after": new.ami_in(r) if new else None}
            for r in ordered]


def _image_key(ref: str) -> tuple[str, str | None]:
    try:
        r = parse_reference(ref)
        return f"{r.registry}/{r.repository}", r.tag
    except Exception:  # noqa: BLE001 - a lock written by a newer bake: still show it
        name, _, tag = ref.partition("@")[0].rpartition(":")
        return (name or ref), (tag if name else None)


def _images(entry: LockEntry | None) -> dict[str, str]:
    out = {}
    for img in entry.images if entry else []:
        key, tag = _image_key(img.ref)
        out[key] = f"{tag or '-'}@{img.digest}"
    return out


def diff_images(before: LockEntry | None, after: LockEntry | None) -> list[ImageChange]:
    b, a = _images(before), _images(after)
    out = []
    for key in sorted(set(b) | set(a)):
        if key not in b:
            out.append(ImageChange(key, "added", None, a[key]))
        elif key not in a:
            out.append(ImageChange(key, "removed", b[key], None))
        elif a[key] != b[key]:
            out.append(ImageChange(key, "changed", b[key], a[key]))
    return out


# ---------------------------------------------------------------------------- review


@dataclass
class Review:
    counts: dict[str, int]
    flagged: list[dict[str, Any]]
    pools: list[PoolReview]
    changes: list[ResourceChange]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "marker": MARKER,
            "counts": self.counts,
            "flagged": self.flagged,
            "pools": [asdict(p) for p in self.pools],
            "resource_changes": [
                {"address": c.address, "type": c.type, "action": c.action, "importing": c.importing, "pool": c.pool,
                 **({"reason": c.reason} if c.reason else {})}
                for c in self.changes if c.action != "no-op" or c.importing
            ],
            "warnings": self.warnings,
        }


def _pool_word(pool: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(pool)}(?![A-Za-z0-9])", re.IGNORECASE)


def _image_id(values: dict[str, Any] | None) -> str | None:
    v = (values or {}).get("image_id")
    return v if isinstance(v, str) and v else None


def build_review(plan: dict[str, Any], base: LockData, head: LockData, config: BakeConfig | None = None) -> Review:
    """``config``: bake.toml, for the diff of each pool's EC2NodeClass (pools with a [karpenter] table)."""
    changes = parse_plan(plan)
    planned = _planned_resources((plan.get("planned_values") or {}).get("root_module"))
    refs = _references((plan.get("configuration") or {}).get("root_module"))
    pools = sorted(set(base.pools) | set(head.pools))

    # 1. image ids the lock names; the pool whose lock changed wins over its history.
    by_ami = {ami: use.pool for lock in (base, head) for ami, use in lock.ami_ids().items()}
    for name in pools:
        for e in (base.pool(name).current, head.pool(name).current):
            for ami in e.amis() if e else []:
                by_ami[ami] = name
    for c in changes:
        if c.type in IMAGE_TYPES:
            for ami in (_image_id(c.after), _image_id(c.before)):
                if ami in by_ami:
                    c.pool = by_ami[ami]
                    break
    # 2. the pool's own addresses in this tool's stack.
    stack = pool_addresses(pools)
    for c in changes:
        if not c.pool:
            c.pool = stack.get(c.config_address)
    # 3. another layout: the pool's name as a word of the address or the resource's name.
    words = sorted(((p, _pool_word(p)) for p in pools), key=lambda x: -len(x[0]))
    for c in changes:
        if c.pool:
            continue
        values = c.after or c.before or {}
        text = " ".join([c.address, *(str(values.get(k) or "") for k in ("name", "name_prefix", "node_group_name"))])
        c.pool = next((p for p, rx in words if rx.search(text)), None)
    # 4. configuration references to a resource already tied to a pool.
    tied = {c.config_address: c.pool for c in changes if c.pool}
    for c in changes:
        if not c.pool:
            c.pool = next((tied[r] for r in sorted(refs.get(c.config_address, ())) if r in tied), None)

    counts = {k: 0 for k in COUNTED}
    flagged = []
    for c in changes:
        if c.action in counts:
            counts[c.action] += 1
        if c.importing:
            counts["import"] += 1
        if c.action in ("replace", "destroy"):
            flagged.append({"address": c.address, "action": c.action, "pool": c.pool, "reason": c.reason})

    reviews = [_pool_review(name, base, head, [c for c in changes if c.pool == name], planned) for name in pools]
    if config is not None:
        from bake.karpenter import manifest_diff

        for r in reviews:
            r.karpenter_diff = manifest_diff(config, r.pool, base.pool(r.pool).current, head.pool(r.pool).current)
    warnings = [w for r in reviews for w in r.warnings]
    return Review(counts=counts, flagged=flagged, pools=reviews, changes=changes, warnings=warnings)


def _pool_review(name: str, base: LockData, head: LockData, mine: list[ResourceChange],
                 planned: dict[str, dict[str, Any]]) -> PoolReview:
    old, new = base.pool(name).current, head.pool(name).current
    if name not in head.pools:
        status = "removed"
    elif old is None and new is not None:
        status = "new"
    elif (old and old.ami_id) != (new and new.ami_id):
        status = "changed"
    else:
        status = "unchanged"
    pin = head.pool(name).pinned
    r = PoolReview(
        pool=name, status=status, ami_before=old.ami_id if old else None, ami_after=new.ami_id if new else None,
        base_before=old.base_ami if old else None, base_after=new.base_ami if new else None,
        images=diff_images(old, new), pinned=f"{pin.ami_id}: {pin.reason}" if pin else None,
        resources=[f"{c.address} ({c.action})" for c in mine], regions=region_amis(old, new),
    )
    for c in mine:
        if c.type in IMAGE_TYPES:
            before, after = _image_id(c.before), _image_id(c.after)
            unknown = bool(c.after_unknown.get("image_id"))
            if before != after or unknown:
                r.plan_images.append({"address": c.address, "action": c.action, "before": before,
                                      "after": "(known after apply)" if unknown and not after else after})
    ami_moves = bool(r.plan_images)
    groups = [c for c in mine if c.type in GROUP_TYPES and c.action not in ("destroy", "no-op", "read")]
    refreshing = [c.address for c in groups if (planned.get(c.address) or c.after or {}).get("instance_refresh")]
    nodegroups = [c.address for c in mine if c.type in NODEGROUP_TYPES and c.action in ("update", "replace")]
    if ami_moves and refreshing:
        r.rollout, r.rollout_detail = "instance-refresh", (
            f"nodes are replaced now: instance refresh on {', '.join(f'`{a}`' for a in refreshing)}")
    elif ami_moves and nodegroups:
        r.rollout, r.rollout_detail = "node-group-update", (
            f"nodes are replaced now: EKS rolls the managed node group {', '.join(f'`{a}`' for a in nodegroups)}")
    elif ami_moves:
        r.rollout, r.rollout_detail = "new-nodes-only", (
            "only new nodes get the new AMI: running nodes keep the old one until they are replaced "
            "(no instance_refresh on the pool's auto scaling group)")
    if new:
        # A plan made before the last build or rollback sets an AMI the lock no longer names.
        for c in mine:
            planned_ami = _image_id(c.after)
            if c.type in IMAGE_TYPES and c.action != "destroy" and planned_ami and planned_ami not in new.amis():
                r.warnings.append(f"pool {name}: the plan sets {c.address} to {planned_ami}, but the lock's current "
                                  f"AMI is {new.ami_id}: a stale plan (made before the last build or rollback?); "
                                  "synthesize and plan again")
    if new is not None:
        fr = _first_read(name, new, mine)
        r.first_read, r.first_read_lines = fr.as_dict(), fr.lines()
    if status in ("changed", "new") and new and not ami_moves and not r.warnings and not any(
            _image_id(c.after) in new.amis() for c in mine if c.type in IMAGE_TYPES):
        r.warnings.append(f"pool {name}: the lock moves to {new.ami_id} but the plan sets no launch template or "
                          "configuration to it (stale synth, or the stack does not read the lock?)")
    return r


def _first_read(name: str, entry: LockEntry, mine: list[ResourceChange]) -> FirstRead:
    """The pool's first-read strategy as the plan leaves it (the template's rate, the fast
    snapshot restores that stay or are created) with the lock's figures of its AMI."""
    kept = [c for c in mine if c.action not in ("destroy", "read") and c.after]
    zones = sorted({c.after["availability_zone"] for c in kept if c.type == EBS_FAST_SNAPSHOT_RESTORE and c.after.get("availability_zone")})
    rates = []
    for c in kept:
        if c.type == LAUNCH_TEMPLATE:
            for bdm in c.after.get("block_device_mappings") or []:
                rates += [e.get("volume_initialization_rate") for e in bdm.get("ebs") or [] if e.get("volume_initialization_rate")]
    return FirstRead(pool=name, rate_mib_s=rates[0] if rates else None, fsr_zones=tuple(zones),
                     prewarm=bool(entry.prewarm), cache_bytes=entry.cache_bytes, snapshot_gib=entry.snapshot_gib,
                     snapshots=len(entry.snapshot_ids))


# ---------------------------------------------------------------------------- render


def _short(v: str | None) -> str:
    if not v:
        return "—"
    tag, _, digest = v.partition("@")
    algo, _, hexd = digest.partition(":")
    return f"`{tag}` `{algo}:{hexd[:12]}`" if hexd else f"`{v}`"


def _code(v: str | None) -> str:
    return f"`{v}`" if v else "—"


def render_markdown(review: Review) -> str:
    c = review.counts
    lines = [MARKER, "## EKS node AMI rollout review", ""]
    if review.flagged:
        lines += ["> [!WARNING]", f"> **This plan replaces {c['replace']} and destroys {c['destroy']} resource(s):**"]
        for f in review.flagged:
            why = f" — {f['reason'].replace('_', ' ')}" if f.get("reason") else ""
            pool = f" (pool `{f['pool']}`)" if f.get("pool") else ""
            lines.append(f"> - **{f['action']}** `{f['address']}`{pool}{why}")
        lines.append("")
    for w in review.warnings:
        lines += [f"> [!CAUTION]\n> {w}", ""]
    lines += ["**Plan:** " + ", ".join(f"{c[k]} to {k}" for k in COUNTED), ""]

    for p in review.pools:
        title = {"new": "new pool", "changed": "AMI changes", "unchanged": "unchanged", "removed": "removed from the lock"}
        lines += [f"### Pool `{p.pool}` — {title[p.status]}", ""]
        lines += ["| | before | after |", "|---|---|---|",
                  f"| AMI | {_code(p.ami_before)} | {_code(p.ami_after)} |",
                  f"| base AMI | {_code(p.base_before)} | {_code(p.base_after)}"
                  f"{' (unchanged)' if p.base_before == p.base_after and p.base_after else ''} |"]
        lines += [f"| AMI in {r['region']} | {_code(r['before'])} | {_code(r['after'])} |" for r in p.regions]
        lines.append("")
        if p.pinned:
            lines += [f"Pinned: {p.pinned}", ""]
        if p.images:
            lines += ["| image | change | before | after |", "|---|---|---|---|"]
            lines += [f"| `{i.image}` | {i.change} | {_short(i.before)} | {_short(i.after)} |" for i in p.images]
            lines.append("")
        elif p.status == "changed":
            lines += ["Images: unchanged (same tags and digests; the base AMI or build changed).", ""]
        if p.rollout_detail:
            lines += [f"**Nodes:** {p.rollout_detail}.", ""]
        if p.first_read_lines:
            lines += ["**First start:**", ""]
            lines += [f"- {'**' + line + '**' if line.startswith('warning:') else line}" for line in p.first_read_lines]
            lines.append("")
        for pi in p.plan_images:
            lines.append(f"- `{pi['address']}` ({pi['action']}): image_id {_code(pi['before'])} → {_code(pi['after'])}")
        if p.plan_images:
            lines.append("")
        if p.karpenter_diff:
            lines += ["<details><summary>EC2NodeClass (<code>python -m bake karpenter</code>)</summary>", "",
                      "```diff", p.karpenter_diff.rstrip("\n"), "```", "", "</details>", ""]

    shown = [ch for ch in review.changes if ch.action != "no-op" or ch.importing]
    lines += [f"<details><summary>All resource changes ({len(shown)})</summary>", "",
              "| action | address | pool |", "|---|---|---|"]
    for ch in shown:
        act = ch.action + (" + import" if ch.importing and ch.action != "no-op" else "")
        act = "import" if ch.importing and ch.action == "no-op" else act
        lines.append(f"| {act} | `{ch.address}` | {ch.pool or ''} |")
    if not shown:
        lines.append("| — | no changes | |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def render_json(review: Review) -> str:
    return json.dumps(review.as_dict(), indent=2) + "\n"
