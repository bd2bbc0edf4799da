-- hostpulse: the QuestDB tables the reporter writes (QuestDB 9.3.5; the TTL
-- clause comes before WAL, as QuestDB 9 requires).
--
-- Apply with `reporter --questdb-schema apply` (each statement goes through
-- QuestDB's HTTP `/exec` endpoint) or paste into the web console. Every
-- statement is `CREATE TABLE IF NOT EXISTS`, so applying it again is harmless;
-- it never alters a table that already exists.
--
-- One table per metric family, as the README's "Tables" section and the module
-- docs of gatherer/src/collect/*.rs describe them:
--
-- - `ts`: the collection cycle's instant (the row's Unix nanoseconds; QuestDB
--   TIMESTAMP keeps microseconds), the designated timestamp.
-- - `node`: the node id; the family's tags: SYMBOL.
-- - Integer fields (counters `*_total`, bytes, counts, gauges that are
--   integers): LONG. The reporter sends them as ILP integers; a value above
--   2^63-1 (a counter the gatherer saturated at 2^64-1) is clamped to
--   2^63-1. Float fields (`*_per_second`, `*_percent`, `*_seconds`,
--   temperatures, load averages): DOUBLE.
-- - Partitioned by day, kept 30 days (TTL drops whole partitions older than
--   that), written through the WAL. QuestDB 9 wants the TTL clause before
--   WAL (`PARTITION BY DAY TTL 30 DAYS WAL`); the other order is refused with
--   `unexpected token [TTL]`.
-- - DEDUP UPSERT KEYS(ts, node, <the family's tags>): the reporter may write
--   the same rows again after a crash (its spool cursor is persisted after the
--   write), and deduplication turns such a replay into a no-op. A row is
--   identified by its cycle instant, its node and its family's tags.
--
-- Operator labels (`gatherer --label region=eu-west`) are sent as extra
-- symbols after the family's tags. QuestDB adds them as SYMBOL columns on
-- first sight (ILP's auto-create of columns, on by default:
-- `line.auto.create.new.columns`), so they are not declared here. They are
-- not dedup keys: a node's labels do not vary within one cycle.
--
-- The reporter checks at start and periodically (`select ... from tables()`,
-- `show columns`) that every table below exists with DEDUP on these keys and
-- `ts` as its designated timestamp, and holds its rows (the spool keeps them)
-- until they do: see the README, "Durability". A table the reporter writes
-- that is missing here (a family added later)
-- is created by ILP on the fly with QuestDB's defaults: no dedup, so replays
-- would duplicate its rows. Add it here before upgrading the gatherers.
--
-- Identifiers that are SQL words (`system`, `rows`, `total`) are quoted;
-- all table names are quoted the same way for consistency.
--
-- Retention: change `TTL 30 DAYS` here before the first start, or later with
-- `ALTER TABLE cpu SET TTL 90 DAYS;`. Fleets beyond ~4096 nodes: raise the
-- `node` symbol capacity with `ALTER TABLE ... ALTER COLUMN node SYMBOL CAPACITY n`.

-- cpu: one row per CPU (`cpu` = "0", "1", ...) and one for the host ("total").
CREATE TABLE IF NOT EXISTS "cpu" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    cpu SYMBOL,
    user_seconds_total DOUBLE,
    nice_seconds_total DOUBLE,
    system_seconds_total DOUBLE,
    idle_seconds_total DOUBLE,
    iowait_seconds_total DOUBLE,
    irq_seconds_total DOUBLE,
    softirq_seconds_total DOUBLE,
    steal_seconds_total DOUBLE,
    guest_seconds_total DOUBLE,
    guest_nice_seconds_total DOUBLE,
    user_percent DOUBLE,
    nice_percent DOUBLE,
    system_percent DOUBLE,
    idle_percent DOUBLE,
    iowait_percent DOUBLE,
    irq_percent DOUBLE,
    softirq_percent DOUBLE,
    steal_percent DOUBLE,
    guest_percent DOUBLE,
    guest_nice_percent DOUBLE,
    usage_percent DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, cpu);

-- load: load averages and task counts, one row per cycle.
CREATE TABLE IF NOT EXISTS "load" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    load1 DOUBLE,
    load5 DOUBLE,
    load15 DOUBLE,
    tasks_runnable LONG,
    tasks LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- memory: /proc/meminfo in bytes (huge page counts are counts).
CREATE TABLE IF NOT EXISTS "memory" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    total_bytes LONG,
    free_bytes LONG,
    available_bytes LONG,
    used_bytes LONG,
    used_percent DOUBLE,
    buffers_bytes LONG,
    cached_bytes LONG,
    shared_bytes LONG,
    slab_bytes LONG,
    slab_reclaimable_bytes LONG,
    slab_unreclaimable_bytes LONG,
    dirty_bytes LONG,
    writeback_bytes LONG,
    committed_bytes LONG,
    commit_limit_bytes LONG,
    active_bytes LONG,
    inactive_bytes LONG,
    mapped_bytes LONG,
    page_tables_bytes LONG,
    hugepages LONG,
    hugepages_free LONG,
    hugepages_reserved LONG,
    hugepages_surplus LONG,
    hugepage_size_bytes LONG,
    hugetlb_bytes LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- swap: swap space (bytes) and swap traffic (pages).
CREATE TABLE IF NOT EXISTS "swap" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    total_bytes LONG,
    free_bytes LONG,
    used_bytes LONG,
    used_percent DOUBLE,
    cached_bytes LONG,
    in_pages_total LONG,
    in_pages_per_second DOUBLE,
    out_pages_total LONG,
    out_pages_per_second DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- vmstat: paging and fault counters (pages_in/pages_out count KiB).
CREATE TABLE IF NOT EXISTS "vmstat" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    page_faults_total LONG,
    page_faults_per_second DOUBLE,
    major_faults_total LONG,
    major_faults_per_second DOUBLE,
    pages_in_total LONG,
    pages_in_per_second DOUBLE,
    pages_out_total LONG,
    pages_out_per_second DOUBLE,
    oom_kills_total LONG,
    oom_kills_per_second DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- network: per-interface counters from /proc/net/dev.
CREATE TABLE IF NOT EXISTS "network" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    interface SYMBOL,
    rx_bytes_total LONG,
    rx_bytes_per_second DOUBLE,
    rx_packets_total LONG,
    rx_packets_per_second DOUBLE,
    rx_errors_total LONG,
    rx_errors_per_second DOUBLE,
    rx_dropped_total LONG,
    rx_dropped_per_second DOUBLE,
    rx_fifo_errors_total LONG,
    rx_fifo_errors_per_second DOUBLE,
    rx_frame_errors_total LONG,
    rx_frame_errors_per_second DOUBLE,
    rx_compressed_total LONG,
    rx_compressed_per_second DOUBLE,
    rx_multicast_total LONG,
    rx_multicast_per_second DOUBLE,
    tx_bytes_total LONG,
    tx_bytes_per_second DOUBLE,
    tx_packets_total LONG,
    tx_packets_per_second DOUBLE,
    tx_errors_total LONG,
    tx_errors_per_second DOUBLE,
    tx_dropped_total LONG,
    tx_dropped_per_second DOUBLE,
    tx_fifo_errors_total LONG,
    tx_fifo_errors_per_second DOUBLE,
    tx_collisions_total LONG,
    tx_collisions_per_second DOUBLE,
    tx_carrier_errors_total LONG,
    tx_carrier_errors_per_second DOUBLE,
    tx_compressed_total LONG,
    tx_compressed_per_second DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, interface);

-- netstat: TCP/UDP protocol counters and socket gauges.
CREATE TABLE IF NOT EXISTS "netstat" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    tcp_active_opens_total LONG,
    tcp_active_opens_per_second DOUBLE,
    tcp_passive_opens_total LONG,
    tcp_passive_opens_per_second DOUBLE,
    tcp_attempt_fails_total LONG,
    tcp_attempt_fails_per_second DOUBLE,
    tcp_established_resets_total LONG,
    tcp_established_resets_per_second DOUBLE,
    tcp_in_segments_total LONG,
    tcp_in_segments_per_second DOUBLE,
    tcp_out_segments_total LONG,
    tcp_out_segments_per_second DOUBLE,
    tcp_retransmitted_segments_total LONG,
    tcp_retransmitted_segments_per_second DOUBLE,
    tcp_in_errors_total LONG,
    tcp_in_errors_per_second DOUBLE,
    tcp_resets_sent_total LONG,
    tcp_resets_sent_per_second DOUBLE,
    tcp_listen_overflows_total LONG,
    tcp_listen_overflows_per_second DOUBLE,
    tcp_listen_drops_total LONG,
    tcp_listen_drops_per_second DOUBLE,
    tcp_timeouts_total LONG,
    tcp_timeouts_per_second DOUBLE,
    tcp_syn_retransmits_total LONG,
    tcp_syn_retransmits_per_second DOUBLE,
    udp_in_datagrams_total LONG,
    udp_in_datagrams_per_second DOUBLE,
    udp_out_datagrams_total LONG,
    udp_out_datagrams_per_second DOUBLE,
    udp_no_ports_total LONG,
    udp_no_ports_per_second DOUBLE,
    udp_in_errors_total LONG,
    udp_in_errors_per_second DOUBLE,
    udp_receive_buffer_errors_total LONG,
    udp_receive_buffer_errors_per_second DOUBLE,
    udp_send_buffer_errors_total LONG,
    udp_send_buffer_errors_per_second DOUBLE,
    tcp_established LONG,
    sockets_used LONG,
    tcp_sockets_in_use LONG,
    tcp_sockets_orphaned LONG,
    tcp_sockets_time_wait LONG,
    tcp_sockets_allocated LONG,
    tcp_memory_pages LONG,
    udp_sockets_in_use LONG,
    udp_memory_pages LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- disk: per-device IO. Request counts and bytes are exact integers; the
-- `*_time_seconds_total` counters are float seconds.
CREATE TABLE IF NOT EXISTS "disk" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    device SYMBOL,
    reads_total LONG,
    reads_per_second DOUBLE,
    reads_merged_total LONG,
    reads_merged_per_second DOUBLE,
    read_bytes_total LONG,
    read_bytes_per_second DOUBLE,
    read_time_seconds_total DOUBLE,
    read_time_seconds_per_second DOUBLE,
    writes_total LONG,
    writes_per_second DOUBLE,
    writes_merged_total LONG,
    writes_merged_per_second DOUBLE,
    written_bytes_total LONG,
    written_bytes_per_second DOUBLE,
    write_time_seconds_total DOUBLE,
    write_time_seconds_per_second DOUBLE,
    io_time_seconds_total DOUBLE,
    io_time_seconds_per_second DOUBLE,
    weighted_io_time_seconds_total DOUBLE,
    weighted_io_time_seconds_per_second DOUBLE,
    discards_total LONG,
    discards_per_second DOUBLE,
    discards_merged_total LONG,
    discards_merged_per_second DOUBLE,
    discarded_bytes_total LONG,
    discarded_bytes_per_second DOUBLE,
    discard_time_seconds_total DOUBLE,
    discard_time_seconds_per_second DOUBLE,
    flushes_total LONG,
    flushes_per_second DOUBLE,
    flush_time_seconds_total DOUBLE,
    flush_time_seconds_per_second DOUBLE,
    in_flight LONG,
    utilization_percent DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, device);

-- filesystem: space and inodes per visible mount point.
CREATE TABLE IF NOT EXISTS "filesystem" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    device SYMBOL,
    mountpoint SYMBOL,
    fstype SYMBOL,
    size_bytes LONG,
    free_bytes LONG,
    available_bytes LONG,
    used_bytes LONG,
    used_percent DOUBLE,
    inodes LONG,
    inodes_free LONG,
    inodes_used LONG,
    inodes_used_percent DOUBLE,
    readonly LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, device, mountpoint, fstype);

-- pressure: PSI per resource (`cpu`, `memory`, `io`, `irq`).
CREATE TABLE IF NOT EXISTS "pressure" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    resource SYMBOL,
    some_avg10_percent DOUBLE,
    some_avg60_percent DOUBLE,
    some_avg300_percent DOUBLE,
    some_stall_seconds_total DOUBLE,
    some_stall_seconds_per_second DOUBLE,
    full_avg10_percent DOUBLE,
    full_avg60_percent DOUBLE,
    full_avg300_percent DOUBLE,
    full_stall_seconds_total DOUBLE,
    full_stall_seconds_per_second DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, resource);

-- processes: process counts, forks, context switches, interrupts, open files.
CREATE TABLE IF NOT EXISTS "processes" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    running LONG,
    blocked LONG,
    "total" LONG,
    forks_total LONG,
    forks_per_second DOUBLE,
    context_switches_total LONG,
    context_switches_per_second DOUBLE,
    interrupts_total LONG,
    interrupts_per_second DOUBLE,
    open_files LONG,
    open_files_max LONG,
    pid_max LONG,
    threads_max LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- system: uptime (float seconds), boot time (Unix seconds), entropy.
CREATE TABLE IF NOT EXISTS "system" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    uptime_seconds DOUBLE,
    boot_time_seconds LONG,
    entropy_available_bits LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node);

-- hwmon: one row per temperature sensor; `alarm` is 0 or 1.
CREATE TABLE IF NOT EXISTS "hwmon" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    chip SYMBOL,
    sensor SYMBOL,
    temperature_celsius DOUBLE,
    max_celsius DOUBLE,
    critical_celsius DOUBLE,
    alarm LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, chip, sensor);

-- hostpulse_self: the pipeline watching itself. `component` says who wrote
-- the row:
-- - `gatherer`: one row per cycle from every node, with its stream. Collection
--   health (`cycles_total`: a gap downstream is a lost batch; `cycle_seconds`,
--   `rows`, `families_failed`, `families_disabled`, `{family}_errors_total`,
--   NULL for a family the gatherer does not run), the process
--   (`cpu_seconds_total`, `rss_bytes`) and delivery (`samples_*`,
--   `batches_*`, `buffer_bytes`, `reconnects_total`, `connected`,
--   `ack_seconds_total`: seconds spent waiting for acknowledgements).
-- - `reporter`: every --self-interval (10 s) from each reporter replica
--   (`node` = its --reporter-id), written through its own spool: streams,
--   batches, samples, acknowledgement time, the spool's bytes and state,
--   and one extra row per store (tag `store`: sqlite, questdb, jsonl) with
--   its lag, deliveries, errors and rejections.
--
-- Last seen per node = max(ts) WHERE component = 'gatherer'.
CREATE TABLE IF NOT EXISTS "hostpulse_self" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    component SYMBOL,
    store SYMBOL,
    cycles_total LONG,
    cycle_seconds DOUBLE,
    "rows" LONG,
    families_failed LONG,
    families_disabled LONG,
    node_info_errors_total LONG,
    cpu_errors_total LONG,
    load_errors_total LONG,
    memory_errors_total LONG,
    swap_errors_total LONG,
    vmstat_errors_total LONG,
    network_errors_total LONG,
    netstat_errors_total LONG,
    disk_errors_total LONG,
    filesystem_errors_total LONG,
    pressure_errors_total LONG,
    processes_errors_total LONG,
    system_errors_total LONG,
    hwmon_errors_total LONG,
    cpu_seconds_total DOUBLE,
    rss_bytes LONG,
    samples_collected_total LONG,
    samples_sent_total LONG,
    batches_sent_total LONG,
    batches_acked_total LONG,
    batches_buffered LONG,
    buffer_bytes LONG,
    batches_dropped_total LONG,
    reconnects_total LONG,
    connected LONG,
    ack_seconds_total DOUBLE,
    streams_open LONG,
    streams_total LONG,
    batches_total LONG,
    samples_total LONG,
    intake_refused_batches_total LONG,
    unauthenticated_total LONG,
    spool_bytes LONG,
    spool_full LONG,
    spool_appended_batches_total LONG,
    spool_refused_batches_total LONG,
    spool_io_errors_total LONG,
    lag_bytes LONG,
    rows_total LONG,
    errors_total LONG,
    rejected_batches_total LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL
DEDUP UPSERT KEYS(ts, node, component, store);

-- node_info: the fleet inventory. The gatherer sends the whole set of facts
-- at its start and again whenever a fact changes: one host row (the host
-- tags, `interface` NULL) and one row per network interface (`interface`,
-- `mac`, `operstate`; `mtu`, `speed_mbps`, `carrier`). The dedup key is
-- (ts, node, interface): within one cycle the host row is the one with
-- `interface` NULL and each interface has one row; the host tags are
-- attributes of that row, not part of its identity.
--
-- Its rows are few (a set per gatherer start or fact change), so it is
-- partitioned by month and kept two years rather than 30 days: with a 30-day
-- TTL a host that neither restarted nor changed for a month would drop out of
-- the inventory.
--
-- First seen / last seen, per node:
-- - first seen = min(ts) of node_info: the first facts the node's gatherer
--   ever sent (within the two-year retention).
-- - max(ts) of node_info is the last time the facts were sent (the last
--   gatherer start or fact change), not the last time the node was heard
--   from: a healthy, unchanged node sends no node_info rows. Last seen comes
--   from `hostpulse_self`, which every node sends every cycle: max(ts) of its
--   gatherer rows (NULL once a node has been silent for longer than the
--   table's 30-day retention).
--
--   SELECT i.node, i.first_seen, i.facts_sent, a.last_seen
--   FROM (SELECT node, min(ts) AS first_seen, max(ts) AS facts_sent
--         FROM node_info GROUP BY node) i
--   LEFT JOIN (SELECT node, max(ts) AS last_seen FROM hostpulse_self
--              WHERE component = 'gatherer' GROUP BY node) a
--     ON i.node = a.node
--   ORDER BY a.last_seen;
--
-- The current facts of every node: the rows of its latest set (every set is
-- complete, so an interface that disappeared is simply absent from it):
--
--   SELECT n.*
--   FROM node_info n
--   JOIN (SELECT node, max(ts) AS ts FROM node_info GROUP BY node) l
--     ON n.node = l.node AND n.ts = l.ts;
CREATE TABLE IF NOT EXISTS "node_info" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    hostname SYMBOL,
    kernel SYMBOL,
    os_name SYMBOL,
    os_version SYMBOL,
    os_pretty_name SYMBOL,
    cpu_model SYMBOL,
    arch SYMBOL,
    interface SYMBOL,
    mac SYMBOL,
    operstate SYMBOL,
    logical_cores LONG,
    physical_cores LONG,
    sockets LONG,
    memory_total_bytes LONG,
    boot_time_seconds LONG,
    mtu LONG,
    speed_mbps LONG,
    carrier LONG
) TIMESTAMP(ts) PARTITION BY MONTH TTL 2 YEARS WAL
DEDUP UPSERT KEYS(ts, node, interface);

-- node_events: what happened to each gatherer, with a human message (the
-- gatherer's `node_events` module documents every event). `event` is the
-- kind (start, stop, config, family_enabled, family_disabled, spill, drop):
-- few values, so a SYMBOL; `message` is text (at most 8 KiB, longer is cut
-- with `…[truncated N bytes]`), so a VARCHAR. Numbers where one says more
-- than the message: `batches` (unacknowledged at start/stop, spilled or
-- dropped so far), `generation` and `interval_seconds` (configuration
-- applied). Kept two years, like node_info. Each event has its own instant (at least 1 µs apart), so the key
-- (ts, node, event) never merges two events.
--
--   SELECT ts, event, message FROM node_events WHERE node = 'web-1' ORDER BY ts DESC LIMIT 50;
CREATE TABLE IF NOT EXISTS "node_events" (
    ts TIMESTAMP,
    node SYMBOL CAPACITY 4096,
    event SYMBOL,
    message VARCHAR,
    batches LONG,
    generation LONG,
    interval_seconds DOUBLE
) TIMESTAMP(ts) PARTITION BY MONTH TTL 2 YEARS WAL
DEDUP UPSERT KEYS(ts, node, event);
