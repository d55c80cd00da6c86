"""Named, ordered migrations, each in its own transaction, recorded in `schema_migrations`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunelab.store.db import Connection, Database

Migration = Callable[["Connection"], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_experiments(con: Connection) -> None:
    con.execute(
        """
        CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT,
            status TEXT NOT NULL,
            dataset_id TEXT,
            config TEXT NOT NULL DEFAULT '{}',
            inputs TEXT NOT NULL DEFAULT '{}',
            outputs TEXT NOT NULL DEFAULT '{}',
            best_metrics TEXT NOT NULL DEFAULT '{}',
            git_commit TEXT,
            git_dirty BOOLEAN,
            engine_version TEXT,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            completed_at TIMESTAMP,
            duration_ms BIGINT,
            error TEXT
        )
        """
    )
    con.execute("CREATE INDEX idx_experiments_status ON experiments(status)")
    con.execute("CREATE INDEX idx_experiments_created ON experiments(created_at)")
    con.execute("CREATE INDEX idx_experiments_commit ON experiments(git_commit)")
    con.execute("CREATE INDEX idx_experiments_name ON experiments(name)")
    # One row per (experiment, artifact) so lineage and find_by_input_artifacts use an index, not JSON scans.
    con.execute(
        """
        CREATE TABLE experiment_artifacts (
            experiment_id TEXT NOT NULL,
            direction TEXT NOT NULL,
            artifact_type TEXT NOT NULL,
            artifact_id TEXT NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX idx_exp_artifacts_artifact ON experiment_artifacts(artifact_id)")
    con.execute("CREATE INDEX idx_exp_artifacts_experiment ON experiment_artifacts(experiment_id)")
    con.execute("CREATE INDEX idx_exp_artifacts_type ON experiment_artifacts(artifact_type)")


@migration
def m002_artifacts(con: Connection) -> None:
    con.execute(
        """
        CREATE TABLE artifacts (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            uri TEXT NOT NULL,
            sha256 TEXT,
            size BIGINT,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX idx_artifacts_type ON artifacts(type)")


@migration
def m003_runs_and_metrics(con: Connection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            experiment_id TEXT NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            training_type TEXT,
            external BOOLEAN NOT NULL DEFAULT FALSE,
            config TEXT NOT NULL DEFAULT '{}',
            inputs TEXT NOT NULL DEFAULT '{}',
            summary TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            adapter_id TEXT,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            completed_at TIMESTAMP
        )
        """
    )
    con.execute("CREATE INDEX idx_runs_experiment ON runs(experiment_id)")
    con.execute(
        """
        CREATE TABLE metrics (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            step BIGINT NOT NULL,
            value DOUBLE NOT NULL,
            ts TIMESTAMP NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX idx_metrics_run_key ON metrics(run_id, key)")


@migration
def m004_drop_metrics_run_key_index(con: Connection) -> None:
    # EXPLAIN ANALYZE shows a sequential scan with zone-map pruning for every metrics query (history, series),
    # even at a million points: DuckDB does not scan this two-column ART index. It only cost ingest time and memory.
    con.execute("DROP INDEX IF EXISTS idx_metrics_run_key")


_EXPERIMENT_COLUMNS = (
    "id, name, description, status, dataset_id, config, inputs, outputs, git_commit, git_dirty, engine_version, "
    "created_at, updated_at, started_at, completed_at, duration_ms, error"
)
_RUN_COLUMNS = (
    "id, experiment_id, name, status, training_type, external, config, inputs, error, adapter_id, created_at, "
    "started_at, completed_at"
)


@migration
def m005_metric_goals_and_summaries_on_read(con: Connection) -> None:
    """Experiments gain metric_goals; best metrics and run summaries, rewritten by every metric batch before,
    are derived on read from the points instead (the stored copies go); a point is unique per (run, key, step)."""
    # DuckDB cannot drop a column of an indexed table: rebuild both tables, then their indexes.
    con.execute(
        """
        CREATE TABLE experiments_v5 (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT,
            status TEXT NOT NULL,
            dataset_id TEXT,
            config TEXT NOT NULL DEFAULT '{}',
            inputs TEXT NOT NULL DEFAULT '{}',
            outputs TEXT NOT NULL DEFAULT '{}',
            git_commit TEXT,
            git_dirty BOOLEAN,
            engine_version TEXT,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            completed_at TIMESTAMP,
            duration_ms BIGINT,
            error TEXT,
            metric_goals TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    con.execute(f"INSERT INTO experiments_v5 ({_EXPERIMENT_COLUMNS}) SELECT {_EXPERIMENT_COLUMNS} FROM experiments")  # noqa: S608
    con.execute("DROP TABLE experiments")
    con.execute("ALTER TABLE experiments_v5 RENAME TO experiments")
    con.execute("CREATE INDEX idx_experiments_status ON experiments(status)")
    con.execute("CREATE INDEX idx_experiments_created ON experiments(created_at)")
    con.execute("CREATE INDEX idx_experiments_commit ON experiments(git_commit)")
    con.execute("CREATE INDEX idx_experiments_name ON experiments(name)")
    con.execute(
        """
        CREATE TABLE runs_v5 (
            id TEXT PRIMARY KEY,
            experiment_id TEXT NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            training_type TEXT,
            external BOOLEAN NOT NULL DEFAULT FALSE,
            config TEXT NOT NULL DEFAULT '{}',
            inputs TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            adapter_id TEXT,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            completed_at TIMESTAMP
        )
        """
    )
    con.execute(f"INSERT INTO runs_v5 ({_RUN_COLUMNS}) SELECT {_RUN_COLUMNS} FROM runs")  # noqa: S608
    con.execute("DROP TABLE runs")
    con.execute("ALTER TABLE runs_v5 RENAME TO runs")
    con.execute("CREATE INDEX idx_runs_experiment ON runs(experiment_id)")
    # Points sent twice before uniqueness: the one stored last stays, as a resend replaces now.
    con.execute("DELETE FROM metrics WHERE rowid NOT IN (SELECT max(rowid) FROM metrics GROUP BY run_id, key, step)")


@migration
def m006_unique_run_names(con: Connection) -> None:
    # Run names were unique per experiment by a read before every insert; the index makes the insert check it.
    con.execute("CREATE UNIQUE INDEX idx_runs_experiment_name ON runs(experiment_id, name)")


@migration
def m007_base_models_and_settings(con: Connection) -> None:
    con.execute(
        """
        CREATE TABLE base_models (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            path TEXT NOT NULL,
            sample_rate INTEGER NOT NULL,
            frame_rate INTEGER NOT NULL,
            num_codebooks INTEGER NOT NULL,
            max_duration_s DOUBLE NOT NULL,
            fingerprint TEXT NOT NULL,
            artifact_id TEXT NOT NULL,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@migration
def m008_datasets_and_audio(con: Connection) -> None:
    con.execute(
        """
        CREATE TABLE datasets (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            description TEXT,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )
        """
    )
    # Audio files as stored under audio/ (by generated id, never by the name a user gave); immutable.
    con.execute(
        """
        CREATE TABLE audio (
            id TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size BIGINT NOT NULL,
            duration_s DOUBLE NOT NULL,
            sample_rate INTEGER NOT NULL,
            channels INTEGER NOT NULL,
            format TEXT NOT NULL,
            original_name TEXT,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE dataset_items (
            id TEXT PRIMARY KEY,
            dataset_id TEXT NOT NULL,
            prompt TEXT NOT NULL,
            rating INTEGER,
            audio_id TEXT,
            chosen_audio_id TEXT,
            rejected_audio_id TEXT,
            duration_s DOUBLE NOT NULL,
            source TEXT NOT NULL,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX idx_dataset_items_dataset ON dataset_items(dataset_id)")


@migration
def m009_runs_started_by_tunelab_and_adapters(con: Connection) -> None:
    # Runs TuneLab starts carry where their outputs go, how their process ended and where they came from.
    con.execute("ALTER TABLE runs ADD COLUMN output_dir TEXT")
    con.execute("ALTER TABLE runs ADD COLUMN exit_code INTEGER")
    con.execute("ALTER TABLE runs ADD COLUMN provenance TEXT DEFAULT '{}'")
    # Adapter records: made by runs now; the registry (validation, listing, lifecycle) grows into the same table.
    con.execute(
        """
        CREATE TABLE adapters (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            base_model_id TEXT,
            storage_path TEXT NOT NULL,
            active BOOLEAN NOT NULL DEFAULT FALSE,
            deleted_at TIMESTAMP,
            description TEXT,
            training_config TEXT NOT NULL DEFAULT '{}',
            training_dataset_id TEXT,
            experiment_id TEXT,
            run_id TEXT,
            metrics TEXT NOT NULL DEFAULT '{}',
            usage_count INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX idx_adapters_name ON adapters(name)")


@migration
def m010_adapter_registry(con: Connection) -> None:
    # What the registry keeps of each adapter's LoRA (rank, alpha, modules, size) and where it came from.
    con.execute("ALTER TABLE adapters ADD COLUMN lora TEXT DEFAULT '{}'")
    con.execute("ALTER TABLE adapters ADD COLUMN source TEXT DEFAULT 'run'")
    # Registrations, activations, deactivations, renames and deletions: the activation history and roll back.
    con.execute("CREATE SEQUENCE adapter_event_seq")  # events of one moment keep the order they were written in
    con.execute(
        """
        CREATE TABLE adapter_events (
            id TEXT PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT nextval('adapter_event_seq'),
            adapter_id TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            event TEXT NOT NULL,
            happened_at TIMESTAMP NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    con.execute("CREATE INDEX idx_adapter_events_name ON adapter_events(name)")


@migration
def m011_generations_and_abtests(con: Connection) -> None:
    # Generation jobs: the worker's clips, with what made them (model, adapter, seed) and how they were rated.
    con.execute(
        """
        CREATE TABLE generations (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            prompt TEXT NOT NULL,
            duration_s DOUBLE NOT NULL,
            seed BIGINT NOT NULL,
            guidance_scale DOUBLE,
            model_id TEXT NOT NULL,
            adapter_id TEXT,
            adapter_path TEXT,
            abtest_id TEXT,
            error TEXT,
            audio_id TEXT,
            rating INTEGER,
            rated_at TIMESTAMP,
            timings TEXT NOT NULL DEFAULT '{}',
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            completed_at TIMESTAMP
        )
        """
    )
    con.execute("CREATE INDEX idx_generations_adapter ON generations(adapter_id)")
    con.execute("CREATE INDEX idx_generations_status ON generations(status)")
    # Blind A/B tests: two adapters (or an adapter and the base model, adapter_b_id NULL) on the same prompts.
    con.execute(
        """
        CREATE TABLE abtests (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            model_id TEXT NOT NULL,
            adapter_a_id TEXT,
            adapter_b_id TEXT,
            prompts TEXT NOT NULL,
            samples_per_prompt INTEGER NOT NULL,
            duration_s DOUBLE NOT NULL,
            seed BIGINT NOT NULL,
            dataset_id TEXT,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    # One pair per prompt and sample: A's and B's clips of the same prompt and seed, shown in a random order.
    con.execute(
        """
        CREATE TABLE abtest_pairs (
            id TEXT PRIMARY KEY,
            abtest_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            seed BIGINT NOT NULL,
            generation_a_id TEXT NOT NULL,
            generation_b_id TEXT NOT NULL,
            a_first BOOLEAN NOT NULL,
            vote TEXT,
            voted_at TIMESTAMP
        )
        """
    )
    con.execute("CREATE INDEX idx_abtest_pairs_test ON abtest_pairs(abtest_id)")


def migrate(db: Database) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    with db.transaction() as con:
        con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP)")
        done = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for step in MIGRATIONS:
        if step.__name__ in done:
            continue
        with db.transaction() as con:
            step(con)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)",
                [step.__name__, datetime.now(UTC).replace(tzinfo=None)],
            )
        applied.append(step.__name__)
    return applied
