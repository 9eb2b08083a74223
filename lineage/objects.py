"""What the pages and the API add to a node of another kind than a model's SQL: a group's
members, a model's group and its other versions (one indexed query each)."""

from __future__ import annotations

from dbtlib.manifest import ResourceType
from lineage.models import Node, Snapshot

MAX_GROUP_MEMBERS = 500
_LISTED = ("unique_id", "name", "resource_type", "version", "details")


def group_members(snapshot: Snapshot, node: Node) -> list[Node]:
    """A group's models, metrics, semantic models and saved queries (at most
    MAX_GROUP_MEMBERS), by type then name."""
    if node.resource_type != ResourceType.GROUP:
        return []
    members = Node.objects.filter(snapshot=snapshot, group_name=node.name).exclude(resource_type=ResourceType.GROUP)
    return list(members.order_by("resource_type", "name", "unique_id").only(*_LISTED)[:MAX_GROUP_MEMBERS])


def group_of(snapshot: Snapshot, node: Node) -> str:
    """The unique_id of the group the node belongs to ("" when none, or not in the snapshot)."""
    if not node.group_name:
        return ""
    group = (
        Node.objects.filter(snapshot=snapshot, name=node.group_name, resource_type=ResourceType.GROUP)
        .values_list("unique_id", flat=True)
        .first()
    )
    return group or ""


def other_versions(snapshot: Snapshot, node: Node) -> list[Node]:
    """A versioned model's other versions, oldest first (none for an unversioned model)."""
    if node.resource_type != ResourceType.MODEL or not node.version:
        return []
    versions = (
        Node.objects.filter(snapshot=snapshot, name=node.name, package_name=node.package_name)
        .filter(resource_type=ResourceType.MODEL)
        .exclude(unique_id=node.unique_id)
        .only("unique_id", "name", "version")
    )
    return sorted(versions, key=lambda v: _version_key(v.version))


def _version_key(version: str) -> tuple:
    """dbt versions are numbers or strings: 2 before 10, numbers before strings."""
    try:
        return (0, float(version), version)
    except ValueError:
        return (1, 0.0, version)


def governed(node: Node) -> bool:
    """Whether a model sets any of dbt's governance beyond its defaults (access protected, no
    group, version or enforced contract): its page then shows them in a section of their own."""
    details = node.details or {}
    return bool(
        details.get("access", "protected") != "protected"
        or node.group_name
        or node.version
        or (details.get("contract") or {}).get("enforced")
        or details.get("constraints")
    )
