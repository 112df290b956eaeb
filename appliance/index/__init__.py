"""The resource index: what exists (resources, their history, metrics, policies, alarms,
tokens, the appliance's health) in one SQLite file. All SQL of the appliance is in here.

Values over time live elsewhere (:mod:`appliance.storage`); the two are joined by the metric
id only. :class:`Index` opens the file once per process (:mod:`.database`: connection,
transactions, the cache epoch) and puts one small repository over it per job:

- :mod:`.policies`  archive policies and the rules that pick one
- :mod:`.resources` resources, their types and attribute history
- :mod:`.metrics`   metrics of resources
- :mod:`.health`    per-source poll outcomes and counters
- :mod:`.alarms`    alarm rows and their history
- :mod:`.tokens`    API token hashes
- :mod:`.events`    events (SNMP traps) by resource, :mod:`.snmp_targets` the SNMP
  targets added at run time, and :mod:`.rebuilds` the metric files awaiting a changed
  policy's layout (module functions over an :class:`Index`)

The repositories are attributes (``index.metric_repo.by_id(...)``); the methods the rest of
the appliance has always called on the index are kept as thin delegates to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from appliance.index.alarms import Alarms
from appliance.index.database import Conflict, Database, NotFound
from appliance.index.health import Health
from appliance.index.metrics import Metrics
from appliance.index.policies import Policies
from appliance.index.resources import BUILTIN_RESOURCE_TYPES, RESOURCE_COLUMNS, Resources
from appliance.index.tokens import Tokens
from appliance.model import ArchivePolicy

__all__ = ["BUILTIN_RESOURCE_TYPES", "RESOURCE_COLUMNS", "Conflict", "Index", "NotFound"]


class Index:
    """The SQLite resource index of one data dir: its repositories over one database."""

    def __init__(self, path: Path | str):
        self.database = db = Database(path)
        self.path = db.path
        self.schema_version = db.schema_version
        self.policy_repo = Policies(db)
        self.resource_repo = Resources(db)
        self.metric_repo = Metrics(db, self.policy_repo)
        self.health = Health(db)
        self.alarm_repo = Alarms(db)
        self.token_repo = Tokens(db)
        # The index's long-standing methods, delegated to the repository that owns them.
        self.close = db.close
        self.query, self.page = db.query, db.page
        self.transaction = db.transaction
        self.epoch = db.epoch
        self.invalidate_caches = db.invalidate_caches
        p = self.policy_repo
        self.policy, self.policies_for, self.policies = p.policy, p.policies_for, p.policies
        self.rules, self.policy_for, self.rule = p.rules, p.policy_for, p.rule
        self.create_policy, self.change_policy = p.create_policy, p.change_policy
        self.delete_policy, self.policy_users = p.delete_policy, p.policy_users
        self.create_rule, self.delete_rule = p.create_rule, p.delete_rule
        self.rename_rule = p.rename_rule
        r = self.resource_repo
        self.ensure_resources, self.update_resource = r.ensure, r.update
        self.delete_resource, self.create_resource = r.delete, r.create
        self.resource, self.resources, self.history = r.get, r.listing, r.history
        self.resource_types = r.types
        m = self.metric_repo
        self.ensure_metrics, self.create_metric, self.metric = m.ensure, m.create, m.get
        self.metrics_by_id, self.metrics, self.delete_metric = m.by_id, m.listing, m.delete
        self.resource_metrics = m.of_resources
        self.set_resource_metrics = m.set_of_resource
        h = self.health
        self.record_reports, self.source_status = h.record_reports, h.source_status
        self.add_counters, self.counters, self.counts = h.add_counters, h.counters, h.counts

    def seed(
        self,
        policies: dict[str, ArchivePolicy],
        rules: Iterable[tuple[str, str, str]],
    ) -> None:
        """Make the built-in and configured policies, rules and resource types exist.

        Config-defined policies are (re)written at every start (and their files queued for a
        rebuild when that changes them); built-in policies and rules are added only when
        missing, so changes made through the API survive a restart.
        """
        with self.database.transaction():
            self.resource_repo.seed_types()
            self.policy_repo.seed(policies, rules)
