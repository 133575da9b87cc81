/*
 * Full worker cycle through the C ABI: open, queues, enqueue (single,
 * batch, headers, idempotency), claim, lease accessors, start, heartbeat,
 * complete (and its duplicate), fail until dead, dead-letter inspection,
 * redrive (head and new offset), purge, complete_batch with a stale token,
 * release, stats, close, free. Built with -std=c99 -Wall -Wextra -Werror
 * under AddressSanitizer/UBSan (see `make test-c`): any unexpected status,
 * memory error or leak fails the run.
 */
#define _POSIX_C_SOURCE 200809L

#include "ordq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ordq_error *err = NULL;
static int checks = 0;

/* (ptr, len) of a string literal or C string. */
#define S(x) (x), strlen(x)

static void fail_now(int line, const char *what, const char *why) {
    fprintf(stderr, "cycle.c:%d: %s: %s\n", line, what, why);
    exit(1);
}

static void ok_(ordq_status st, const char *what, int line) {
    checks++;
    if (st != ORDQ_OK) {
        char buf[1024];
        snprintf(buf, sizeof buf, "status %s (%d): %s", ordq_status_name(st), (int)st,
                 err ? ordq_error_message(err) : "(no error object)");
        fail_now(line, what, buf);
    }
}
#define OK(call) ok_((call), #call, __LINE__)

static void expect_(ordq_status st, ordq_status want, const char *what, int line) {
    checks++;
    if (st != want) {
        char buf[1024];
        snprintf(buf, sizeof buf, "got %s, want %s (%s)", ordq_status_name(st),
                 ordq_status_name(want), err ? ordq_error_message(err) : "no error object");
        fail_now(line, what, buf);
    }
    if (st != ORDQ_OK) {
        if (err == NULL) fail_now(line, what, "no error object on failure");
        if (ordq_error_code(err) != want) fail_now(line, what, "error code differs from status");
        if (ordq_error_message(err)[0] == '\0') fail_now(line, what, "empty error message");
        ordq_error_free(err);
        err = NULL;
    }
}
#define EXPECT(call, want) expect_((call), (want), #call, __LINE__)

#define CHECK(cond)                                                   \
    do {                                                              \
        checks++;                                                     \
        if (!(cond)) fail_now(__LINE__, #cond, "check failed");       \
    } while (0)

/* True when `json` (an ordq_bytes) contains `needle`. */
static int json_has(const ordq_bytes *json, const char *needle) {
    return strstr((const char *)json->ptr, needle) != NULL;
}

static int bytes_eq(const void *p, size_t n, const char *s) {
    return n == strlen(s) && (n == 0 || memcmp(p, s, n) == 0);
}

static const char *Q = "jobs";

/* Claims with a wait until a lease for `offset` comes back; returns it
 * owned (taken out of its list). */
static ordq_lease *claim_offset(const ordq_db *db, uint64_t offset) {
    ordq_claim_options co;
    ordq_claim_options_init(&co);
    co.max = 10;
    co.wait_ms = 200;
    for (int round = 0; round < 50; round++) {
        ordq_lease_list *list = NULL;
        OK(ordq_claim(db, S(Q), S("c-worker"), &co, &list, &err));
        ordq_lease *found = NULL;
        for (size_t i = 0; i < ordq_lease_list_len(list); i++) {
            if (ordq_lease_offset(ordq_lease_list_get(list, i)) == offset) {
                OK(ordq_lease_list_take(list, i, &found, &err));
            } else {
                /* Not ours: give it back so it stays claimable. */
                ordq_token t;
                OK(ordq_lease_token(ordq_lease_list_get(list, i), &t, &err));
                OK(ordq_release(db, t, &err));
            }
        }
        ordq_lease_list_free(list);
        if (found) return found;
    }
    fail_now(__LINE__, "claim_offset", "task never became claimable");
    return NULL;
}

static ordq_token token_of(const ordq_lease *l) {
    ordq_token t;
    OK(ordq_lease_token(l, &t, &err));
    return t;
}

int main(void) {
    /* Versions. */
    CHECK(ordq_abi_version() == ORDQ_ABI_VERSION);
    CHECK((ordq_abi_version() >> 16) == ORDQ_ABI_VERSION_MAJOR);
    CHECK(strlen(ordq_version_string()) > 0);
    CHECK(strcmp(ordq_status_name(ORDQ_LEASE_LOST), "LEASE_LOST") == 0);

    /* Open a fresh file (through the file:// form). */
    char dir[] = "/tmp/ordq-c-cycle-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], uri[300];
    snprintf(path, sizeof path, "%s/jobs.ordq", dir);
    snprintf(uri, sizeof uri, "file://%s", path);
    ordq_options opts;
    ordq_options_init(&opts);
    CHECK(opts.durability == ORDQ_DURABILITY_IMMEDIATE && opts.max_payload == 1u << 20);
    opts.durability = ORDQ_DURABILITY_NONE;
    ordq_db *db = NULL;
    OK(ordq_open(S(uri), &opts, &db, &err));
    CHECK(db != NULL);

    /* Queue: max_attempts 2, tiny backoff so retries are ready at once. */
    ordq_queue_config cfg;
    ordq_queue_config_init(&cfg);
    CHECK(cfg.shards == 16 && cfg.ordering == ORDQ_ORDERING_KEY && cfg.max_attempts == 10);
    cfg.max_attempts = 2;
    cfg.backoff_initial_ms = 1;
    cfg.backoff_max_ms = 1;
    OK(ordq_queue_create(db, S(Q), &cfg, &err));
    EXPECT(ordq_queue_create(db, S(Q), &cfg, &err), ORDQ_ALREADY_EXISTS);
    ordq_queue_config got;
    OK(ordq_queue_get(db, S(Q), &got, &err));
    CHECK(got.max_attempts == 2 && got.shards == 16 && got.lease_ms == 30000);
    CHECK(got.backoff_multiplier == 2.0 && got.dlq_policy == ORDQ_DLQ_SKIP);
    OK(ordq_queue_create(db, S("other"), NULL, &err));
    ordq_string_list *names = NULL;
    OK(ordq_queue_list(db, &names, &err));
    CHECK(ordq_string_list_len(names) == 2);
    CHECK(strcmp(ordq_string_list_get(names, 0), "jobs") == 0);
    CHECK(strcmp(ordq_string_list_get(names, 1), "other") == 0);
    CHECK(ordq_string_list_get(names, 2) == NULL);
    ordq_string_list_free(names);
    OK(ordq_queue_delete(db, S("other"), &err));
    EXPECT(ordq_queue_get(db, S("other"), &got, &err), ORDQ_NOT_FOUND);
    ordq_bytes qjson = {NULL, 0};
    OK(ordq_queue_get_json(db, S(Q), &qjson, &err));
    CHECK(json_has(&qjson, "\"name\":\"jobs\"") && json_has(&qjson, "\"max_attempts\":2"));
    CHECK(qjson.ptr[qjson.len] == '\0');
    ordq_bytes_free(&qjson);

    /* Enqueue with headers and an idempotency key, then again: duplicate. */
    ordq_header headers[2] = {
        {S("x-tenant"), S("t1")},
        {S("traceparent"), S("00-abc-01")},
    };
    ordq_enqueue_options eo;
    ordq_enqueue_options_init(&eo);
    eo.headers = headers;
    eo.headers_len = 2;
    eo.idempotency_key = "idem-1";
    eo.idempotency_key_len = 6;
    ordq_receipt r0, rdup;
    OK(ordq_enqueue(db, S(Q), S("user-1"), (const uint8_t *)"hello", 5, &eo, &r0, &err));
    CHECK(r0.offset == 0 && !r0.duplicate && strlen(r0.id) == ORDQ_TASK_ID_LEN);
    CHECK(r0.shard < 16);
    OK(ordq_enqueue(db, S(Q), S("user-1"), (const uint8_t *)"hello", 5, &eo, &rdup, &err));
    CHECK(rdup.duplicate && rdup.offset == 0 && strcmp(rdup.id, r0.id) == 0);

    /* Batch of three: offsets 1..3 in order; one empty payload (NULL). */
    ordq_enqueue_item items[3] = {
        {S("user-2"), (const uint8_t *)"p2", 2, NULL},
        {S("user-3"), (const uint8_t *)"p3", 2, NULL},
        {S("user-4"), NULL, 0, NULL},
    };
    ordq_receipt rs[3];
    OK(ordq_enqueue_batch(db, S(Q), items, 3, rs, &err));
    for (int i = 0; i < 3; i++) CHECK(rs[i].offset == (uint64_t)i + 1 && !rs[i].duplicate);

    /* Claim up to 10: four lanes, four leases, in offset order. */
    ordq_claim_options co;
    ordq_claim_options_init(&co);
    CHECK(co.max == 1 && co.wait_ms == 0 && co.lease_ms == 0);
    co.max = 10;
    ordq_lease_list *list = NULL;
    OK(ordq_claim(db, S(Q), S("c-worker"), &co, &list, &err));
    CHECK(ordq_lease_list_len(list) == 4);
    const ordq_lease *l0 = ordq_lease_list_get(list, 0);
    ordq_lease_info info;
    OK(ordq_lease_get_info(l0, &info, &err));
    CHECK(info.offset == 0 && info.attempt == 1 && info.max_attempts == 2);
    CHECK(info.shard == r0.shard && info.priority == 0);
    CHECK(info.expires_at > info.leased_at && info.leased_at >= info.enqueued_at);
    CHECK(info.token.offset == 0 && info.token.fence > 0);
    CHECK(bytes_eq(info.key, info.key_len, "user-1"));
    CHECK(bytes_eq(info.payload, info.payload_len, "hello"));
    CHECK(bytes_eq(info.queue, info.queue_len, "jobs") && info.queue[info.queue_len] == '\0');
    CHECK(info.id_len == ORDQ_TASK_ID_LEN && strcmp(info.id, r0.id) == 0);
    CHECK(info.header_count == 2 && ordq_lease_header_count(l0) == 2);
    const char *hn, *hv;
    size_t hnl, hvl;
    /* Headers come back sorted by name. */
    OK(ordq_lease_header_get(l0, 0, &hn, &hnl, &hv, &hvl, &err));
    CHECK(bytes_eq(hn, hnl, "traceparent") && bytes_eq(hv, hvl, "00-abc-01"));
    OK(ordq_lease_header_get(l0, 1, &hn, &hnl, &hv, &hvl, &err));
    CHECK(bytes_eq(hn, hnl, "x-tenant") && bytes_eq(hv, hvl, "t1"));
    EXPECT(ordq_lease_header_get(l0, 2, &hn, &hnl, &hv, &hvl, &err), ORDQ_INVALID_ARGUMENT);
    /* The single-field accessors agree with the info struct. */
    const char *kp;
    size_t kl;
    const uint8_t *pp;
    size_t pl;
    OK(ordq_lease_key(l0, &kp, &kl, &err));
    CHECK(kp == info.key && kl == info.key_len);
    OK(ordq_lease_payload(l0, &pp, &pl, &err));
    CHECK(pp == info.payload && pl == 5);
    OK(ordq_lease_id(l0, &kp, &kl, &err));
    CHECK(kl == 32 && strcmp(kp, r0.id) == 0);
    OK(ordq_lease_queue(l0, &kp, &kl, &err));
    CHECK(bytes_eq(kp, kl, "jobs"));
    CHECK(ordq_lease_attempt(l0) == 1 && ordq_lease_max_attempts(l0) == 2);
    CHECK(ordq_lease_shard(l0) == r0.shard && ordq_lease_priority(l0) == 0);
    CHECK(ordq_lease_enqueued_at(l0) == info.enqueued_at);
    CHECK(ordq_lease_leased_at(l0) == info.leased_at);
    CHECK(ordq_lease_expires_at(l0) == info.expires_at);
    ordq_token t0 = token_of(l0);
    CHECK(t0.offset == info.token.offset && t0.fence == info.token.fence);

    /* Leases 1..3 are taken out as owned objects for later. */
    ordq_lease *own[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 1; i < 4; i++) {
        OK(ordq_lease_list_take(list, i, &own[i], &err));
        CHECK(ordq_lease_offset(own[i]) == i);
        CHECK(ordq_lease_list_get(list, i) == NULL);
    }
    EXPECT(ordq_lease_list_take(list, 1, &own[0], &err), ORDQ_INVALID_ARGUMENT);
    CHECK(own[0] == NULL);
    {
        ordq_lease_info i3;
        OK(ordq_lease_get_info(own[3], &i3, &err));
        CHECK(i3.payload_len == 0 && i3.payload != NULL && i3.header_count == 0);
    }

    /* start, heartbeat, complete, and the duplicate complete. */
    OK(ordq_start(db, t0, &err));
    uint64_t expires = 0;
    OK(ordq_heartbeat(db, t0, 60000, &expires, &err));
    CHECK(expires >= info.leased_at + 60000);
    OK(ordq_heartbeat(db, t0, 0, &expires, &err));
    CHECK(expires >= info.leased_at + 30000);
    ordq_completion c0, c0dup;
    OK(ordq_complete(db, t0, (const uint8_t *)"done", 4, &c0, &err));
    CHECK(c0.offset == 0 && !c0.duplicate && c0.committed_at > 0);
    OK(ordq_complete(db, t0, (const uint8_t *)"done", 4, &c0dup, &err));
    CHECK(c0dup.duplicate && c0dup.offset == 0 && c0dup.committed_at == c0.committed_at);
    EXPECT(ordq_heartbeat(db, t0, 0, &expires, &err), ORDQ_LEASE_LOST);
    ordq_lease_list_free(list); /* frees lease 0, which was not taken */
    {
        ordq_bytes tj = {NULL, 0};
        OK(ordq_task_get_json(db, S(Q), 0, &tj, &err));
        CHECK(json_has(&tj, "\"state\":\"done\"") && json_has(&tj, "\"offset\":0"));
        /* base64 of "hello" and "done" */
        CHECK(json_has(&tj, "\"payload\":\"aGVsbG8=\"") && json_has(&tj, "\"result\":\"ZG9uZQ==\""));
        CHECK(json_has(&tj, "\"traceparent\":\"00-abc-01\"") && json_has(&tj, "\"worker\":\"c-worker\""));
        ordq_bytes_free(&tj);
    }

    /* Offset 1 fails twice (max_attempts 2): retry, then dead letter. */
    ordq_token t1a = token_of(own[1]);
    ordq_fail_outcome fo;
    OK(ordq_fail(db, t1a, S("boom one"), true, &fo, &err));
    CHECK(!fo.dead && fo.attempt == 1 && fo.not_before > 0);
    ordq_lease_free(own[1]);
    own[1] = claim_offset(db, 1);
    CHECK(ordq_lease_attempt(own[1]) == 2);
    ordq_token t1b = token_of(own[1]);
    CHECK(t1b.fence > t1a.fence);
    EXPECT(ordq_complete(db, t1a, NULL, 0, &c0, &err), ORDQ_LEASE_LOST);
    OK(ordq_fail(db, t1b, S("boom two"), true, &fo, &err));
    CHECK(fo.dead && fo.attempt == 2 && fo.not_before == 0);
    ordq_lease_free(own[1]);
    own[1] = NULL;

    /* Dead-letter inspection. */
    ordq_bytes dj = {NULL, 0};
    OK(ordq_dlq_list_json(db, S(Q), false, 0, 100, &dj, &err));
    CHECK(dj.ptr[0] == '[' && json_has(&dj, "\"offset\":1") && json_has(&dj, "\"state\":\"dead\""));
    ordq_bytes_free(&dj);
    OK(ordq_dlq_list_json(db, S(Q), true, 1, 100, &dj, &err));
    CHECK(strcmp((const char *)dj.ptr, "[]") == 0);
    ordq_bytes_free(&dj);

    /* Unfinished tasks: 0 is done and 1 dead; 2 and 3 are leased. */
    OK(ordq_queue_pending_json(db, S(Q), false, 0, 100, &dj, &err));
    CHECK(dj.ptr[0] == '[' && json_has(&dj, "\"offset\":2") && json_has(&dj, "\"offset\":3"));
    CHECK(!json_has(&dj, "\"offset\":0") && !json_has(&dj, "\"offset\":1"));
    CHECK(json_has(&dj, "\"state\":\"leased\"") && !json_has(&dj, "\"state\":\"dead\""));
    ordq_bytes_free(&dj);
    OK(ordq_queue_pending_json(db, S(Q), true, 2, 1, &dj, &err));
    CHECK(json_has(&dj, "\"offset\":3") && !json_has(&dj, "\"offset\":2"));
    ordq_bytes_free(&dj);
    OK(ordq_queue_pending_json(db, S(Q), true, 3, 100, &dj, &err));
    CHECK(strcmp((const char *)dj.ptr, "[]") == 0);
    ordq_bytes_free(&dj);
    OK(ordq_dlq_get_json(db, S(Q), 1, &dj, &err));
    CHECK(json_has(&dj, "\"task\":{") && json_has(&dj, "\"offset\":1"));
    CHECK(json_has(&dj, "\"faults\":[") && json_has(&dj, "boom one") && json_has(&dj, "boom two"));
    CHECK(json_has(&dj, "\"kind\":\"failed\""));
    ordq_bytes_free(&dj);
    OK(ordq_task_faults_json(db, S(Q), 1, &dj, &err));
    CHECK(json_has(&dj, "\"attempt\":1") && json_has(&dj, "\"attempt\":2"));
    ordq_bytes_free(&dj);
    EXPECT(ordq_dlq_get_json(db, S(Q), 0, &dj, &err), ORDQ_NOT_FOUND);
    CHECK(dj.ptr == NULL); /* outputs are written only on success */

    /* Redrive to the head of its lane: offset 1 again, attempts reset. */
    ordq_receipt rr;
    OK(ordq_dlq_redrive(db, S(Q), 1, ORDQ_REDRIVE_HEAD, &rr, &err));
    CHECK(rr.offset == 1);
    own[1] = claim_offset(db, 1);
    CHECK(ordq_lease_attempt(own[1]) == 1);

    /* complete_batch: two live tokens and the stale one from attempt 2. */
    ordq_complete_item ci[3] = {
        {token_of(own[1]), (const uint8_t *)"r1", 2},
        {token_of(own[2]), NULL, 0},
        {t1b, (const uint8_t *)"late", 4},
    };
    ordq_completion outs[3];
    ordq_status sts[3] = {-1, -1, -1};
    OK(ordq_complete_batch(db, ci, 3, outs, sts, &err));
    CHECK(sts[0] == ORDQ_OK && outs[0].offset == 1 && !outs[0].duplicate);
    CHECK(sts[1] == ORDQ_OK && outs[1].offset == 2);
    CHECK(sts[2] == ORDQ_LEASE_LOST);
    OK(ordq_complete_batch(db, NULL, 0, NULL, NULL, &err));

    /* Release offset 3: the attempt does not count. */
    OK(ordq_release(db, token_of(own[3]), &err));
    EXPECT(ordq_release(db, token_of(own[3]), &err), ORDQ_LEASE_LOST);
    ordq_lease_free(own[3]);
    own[3] = claim_offset(db, 3);
    CHECK(ordq_lease_attempt(own[3]) == 1);
    OK(ordq_complete(db, token_of(own[3]), NULL, 0, &c0, &err));

    /* A one-attempt task: dead at once, redriven to a new offset, dead
     * again (not retryable), purged. */
    ordq_enqueue_options once;
    ordq_enqueue_options_init(&once);
    once.max_attempts = 1;
    once.priority = 5;
    ordq_receipt r4;
    OK(ordq_enqueue(db, S(Q), S("user-5"), (const uint8_t *)"p5", 2, &once, &r4, &err));
    CHECK(r4.offset == 4);
    ordq_lease *l4 = claim_offset(db, 4);
    CHECK(ordq_lease_priority(l4) == 5 && ordq_lease_max_attempts(l4) == 1);
    OK(ordq_fail(db, token_of(l4), S("fatal"), false, &fo, &err));
    CHECK(fo.dead && fo.attempt == 1);
    ordq_lease_free(l4);
    ordq_receipt r5;
    EXPECT(ordq_dlq_redrive(db, S(Q), 0, ORDQ_REDRIVE_HEAD, &r5, &err), ORDQ_INVALID_STATE);
    OK(ordq_dlq_redrive(db, S(Q), 4, ORDQ_REDRIVE_NEW_OFFSET, &r5, &err));
    CHECK(r5.offset == 5 && strcmp(r5.id, r4.id) != 0);
    OK(ordq_task_get_json(db, S(Q), 4, &dj, &err));
    CHECK(json_has(&dj, "\"redriven_to\":5"));
    ordq_bytes_free(&dj);
    ordq_lease *l5 = claim_offset(db, 5);
    OK(ordq_fail(db, token_of(l5), S("fatal again"), false, &fo, &err));
    CHECK(fo.dead);
    ordq_lease_free(l5);
    uint64_t purged = 0;
    OK(ordq_dlq_purge(db, S(Q), false, 5, &purged, &err));
    CHECK(purged == 1);
    OK(ordq_dlq_purge(db, S(Q), true, 0, &purged, &err));
    CHECK(purged == 0);

    /* Stats. */
    ordq_bytes sj = {NULL, 0};
    OK(ordq_queue_stats_json(db, S(Q), &sj, &err));
    CHECK(json_has(&sj, "\"queue\":\"jobs\"") && json_has(&sj, "\"next_offset\":6"));
    CHECK(json_has(&sj, "\"enqueued\":6") && json_has(&sj, "\"completed\":4"));
    CHECK(json_has(&sj, "\"dead_lettered\":3") && json_has(&sj, "\"redriven\":2"));
    CHECK(json_has(&sj, "\"purged\":1") && json_has(&sj, "\"released\":1"));
    CHECK(json_has(&sj, "\"dead\":0") && json_has(&sj, "\"shards\":["));
    ordq_bytes_free(&sj);
    ordq_bytes_free(&sj); /* freeing a reset buffer again is a no-op */

    OK(ordq_db_sync(db, &err));

    /* Close: idempotent, later calls are ORDQ_CLOSED; then free. */
    OK(ordq_db_close(db, &err));
    OK(ordq_db_close(db, &err));
    EXPECT(ordq_enqueue(db, S(Q), S("k"), NULL, 0, NULL, &r0, &err), ORDQ_CLOSED);
    for (int i = 0; i < 4; i++) ordq_lease_free(own[i]);
    ordq_db_free(db);

    unlink(path);
    rmdir(dir);
    printf("cycle: %d passed, 0 failed\n", checks);
    return 0;
}
