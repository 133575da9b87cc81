/*
 * Hostile and careless input through the C ABI: NULL for every pointer
 * argument of every function, invalid UTF-8, over-long names, unknown enum
 * values, unknown queues and offsets, stale tokens, a file held by another
 * handle, calls after close, NULL frees, and failures with err_out NULL.
 * Every call must return its documented status with a non-empty message,
 * without crashing, leaking or touching memory it should not (run under
 * AddressSanitizer/UBSan by `make test-c`).
 */
#define _POSIX_C_SOURCE 200809L

#include "ordq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ordq_error *err = NULL;
static int checks = 0;

#define S(x) (x), strlen(x)

static void die(int line, const char *what, const char *why) {
    fprintf(stderr, "bad_input.c:%d: %s: %s\n", line, what, why);
    exit(1);
}

/* Checks a status and, on failure, the error object: same code, non-empty
 * message, and (when `needle` is non-NULL) a message mentioning it. */
static void expect_(ordq_status st, ordq_status want, const char *needle, const char *what,
                    int line) {
    checks++;
    if (st != want) {
        char buf[1024];
        snprintf(buf, sizeof buf, "got %s (%d), want %s (%s)", ordq_status_name(st), (int)st,
                 ordq_status_name(want), err ? ordq_error_message(err) : "no error object");
        die(line, what, buf);
    }
    if (st == ORDQ_OK) {
        if (err != NULL) die(line, what, "error object on success");
        return;
    }
    if (err == NULL) die(line, what, "no error object on failure");
    if (ordq_error_code(err) != want) die(line, what, "error code differs from status");
    const char *msg = ordq_error_message(err);
    if (msg == NULL || msg[0] == '\0') die(line, what, "empty error message");
    if (needle && strstr(msg, needle) == NULL) {
        char buf[1024];
        snprintf(buf, sizeof buf, "message %s does not mention %s", msg, needle);
        die(line, what, buf);
    }
    ordq_error_free(err);
    err = NULL;
}
#define EXPECT(call, want) expect_((call), (want), NULL, #call, __LINE__)
#define EXPECT_MSG(call, want, needle) expect_((call), (want), (needle), #call, __LINE__)
/* A NULL pointer argument: ORDQ_NULL_POINTER naming the argument. */
#define EXPECT_NULL(call, arg) expect_((call), ORDQ_NULL_POINTER, "`" arg "`", #call, __LINE__)
#define OK(call) EXPECT(call, ORDQ_OK)

#define CHECK(cond)                                                \
    do {                                                           \
        checks++;                                                  \
        if (!(cond)) die(__LINE__, #cond, "check failed");         \
    } while (0)

static const char *Q = "jobs";
static const char BAD_UTF8[] = "ab\xff\xfe";

int main(void) {
    char dir[] = "/tmp/ordq-c-bad-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/bad.ordq", dir);

    ordq_options opts;
    ordq_options_init(&opts);
    opts.durability = ORDQ_DURABILITY_NONE;
    opts.max_payload = 16;
    ordq_db *db = NULL;

    /* ---- ordq_open ---- */
    EXPECT_NULL(ordq_open(NULL, 5, &opts, &db, &err), "uri");
    EXPECT_NULL(ordq_open(S(path), &opts, NULL, &err), "db_out");
    EXPECT_MSG(ordq_open(NULL, 0, &opts, &db, &err), ORDQ_INVALID_ARGUMENT, "empty");
    EXPECT_MSG(ordq_open(BAD_UTF8, 4, &opts, &db, &err), ORDQ_INVALID_ARGUMENT, "UTF-8");
    /* Remote mode: nothing listens there. */
    EXPECT_MSG(ordq_open(S("unix:///nonexistent-ordq-dir/ordq.sock"), NULL, &db, &err),
               ORDQ_UNAVAILABLE, "cannot reach the broker");
    EXPECT(ordq_open(S("tcp://127.0.0.1:1"), NULL, &db, &err), ORDQ_UNAVAILABLE);
    EXPECT_MSG(ordq_open(S("tcp://127.0.0.1"), NULL, &db, &err), ORDQ_INVALID_ARGUMENT, "port");
    {
        ordq_options remote = opts;
        remote.token = NULL;
        remote.token_len = 3;
        EXPECT_MSG(ordq_open(S("tcp://127.0.0.1:1"), &remote, &db, &err), ORDQ_INVALID_ARGUMENT,
                   "opts.token");
        remote.token = BAD_UTF8;
        remote.token_len = 4;
        EXPECT_MSG(ordq_open(S("tcp://127.0.0.1:1"), &remote, &db, &err), ORDQ_INVALID_ARGUMENT,
                   "UTF-8");
        remote = opts;
        remote.client = BAD_UTF8;
        remote.client_len = 4;
        EXPECT_MSG(ordq_open(S("unix:///x.sock"), &remote, &db, &err), ORDQ_INVALID_ARGUMENT,
                   "opts.client");
    }
    EXPECT_MSG(ordq_open(S("http://example/x"), NULL, &db, &err), ORDQ_INVALID_ARGUMENT,
               "scheme");
    {
        ordq_options bad = opts;
        bad.durability = 2;
        EXPECT_MSG(ordq_open(S(path), &bad, &db, &err), ORDQ_INVALID_ARGUMENT, "durability");
    }
    CHECK(db == NULL); /* never written on failure */
    OK(ordq_open(S(path), &opts, &db, &err));
    {
        ordq_db *second = NULL;
        EXPECT(ordq_open(S(path), NULL, &second, &err), ORDQ_ALREADY_OPEN);
        CHECK(second == NULL);
    }

    /* ---- queues ---- */
    ordq_queue_config cfg;
    ordq_queue_config_init(&cfg);
    cfg.max_attempts = 3;
    EXPECT_NULL(ordq_queue_create(NULL, S(Q), &cfg, &err), "db");
    EXPECT_NULL(ordq_queue_create(db, NULL, 4, &cfg, &err), "name");
    EXPECT(ordq_queue_create(db, NULL, 0, &cfg, &err), ORDQ_INVALID_ARGUMENT);
    EXPECT_MSG(ordq_queue_create(db, BAD_UTF8, 4, &cfg, &err), ORDQ_INVALID_ARGUMENT, "UTF-8");
    {
        char longname[130];
        memset(longname, 'a', 129);
        longname[129] = '\0';
        EXPECT(ordq_queue_create(db, longname, 129, &cfg, &err), ORDQ_INVALID_ARGUMENT);
        OK(ordq_queue_create(db, longname, 128, &cfg, &err)); /* 128 is the limit */
        OK(ordq_queue_delete(db, longname, 128, &err));
    }
    EXPECT(ordq_queue_create(db, S("-starts-with-dash"), &cfg, &err), ORDQ_INVALID_ARGUMENT);
    {
        ordq_queue_config bad = cfg;
        bad.ordering = 4;
        EXPECT_MSG(ordq_queue_create(db, S(Q), &bad, &err), ORDQ_INVALID_ARGUMENT, "ordering");
        bad = cfg;
        bad.dlq_policy = -1;
        EXPECT_MSG(ordq_queue_create(db, S(Q), &bad, &err), ORDQ_INVALID_ARGUMENT, "dlq_policy");
        bad = cfg;
        bad.max_attempts = 0;
        EXPECT(ordq_queue_create(db, S(Q), &bad, &err), ORDQ_INVALID_ARGUMENT);
        bad = cfg;
        bad.shards = 0;
        EXPECT(ordq_queue_create(db, S(Q), &bad, &err), ORDQ_INVALID_ARGUMENT);
        bad = cfg;
        bad.lease_ms = 0;
        EXPECT(ordq_queue_create(db, S(Q), &bad, &err), ORDQ_INVALID_ARGUMENT);
        bad = cfg;
        bad.backoff_jitter = 1.5;
        EXPECT(ordq_queue_create(db, S(Q), &bad, &err), ORDQ_INVALID_ARGUMENT);
    }
    OK(ordq_queue_create(db, S(Q), &cfg, &err));
    OK(ordq_queue_create(db, S("defaults"), NULL, &err)); /* NULL config = defaults */

    ordq_queue_config got;
    EXPECT_NULL(ordq_queue_get(NULL, S(Q), &got, &err), "db");
    EXPECT_NULL(ordq_queue_get(db, NULL, 4, &got, &err), "name");
    EXPECT_NULL(ordq_queue_get(db, S(Q), NULL, &err), "cfg_out");
    EXPECT(ordq_queue_get(db, S("nope"), &got, &err), ORDQ_NOT_FOUND);
    EXPECT(ordq_queue_get(db, BAD_UTF8, 4, &got, &err), ORDQ_INVALID_ARGUMENT);
    ordq_bytes json = {NULL, 0};
    EXPECT_NULL(ordq_queue_get_json(NULL, S(Q), &json, &err), "db");
    EXPECT_NULL(ordq_queue_get_json(db, NULL, 1, &json, &err), "name");
    EXPECT_NULL(ordq_queue_get_json(db, S(Q), NULL, &err), "json_out");
    EXPECT(ordq_queue_get_json(db, S("nope"), &json, &err), ORDQ_NOT_FOUND);
    ordq_string_list *names = NULL;
    EXPECT_NULL(ordq_queue_list(NULL, &names, &err), "db");
    EXPECT_NULL(ordq_queue_list(db, NULL, &err), "list_out");
    EXPECT_NULL(ordq_queue_delete(NULL, S(Q), &err), "db");
    EXPECT_NULL(ordq_queue_delete(db, NULL, 3, &err), "name");
    EXPECT(ordq_queue_delete(db, S("nope"), &err), ORDQ_NOT_FOUND);
    EXPECT_NULL(ordq_queue_stats_json(NULL, S(Q), &json, &err), "db");
    EXPECT_NULL(ordq_queue_stats_json(db, NULL, 2, &json, &err), "name");
    EXPECT_NULL(ordq_queue_stats_json(db, S(Q), NULL, &err), "json_out");
    EXPECT(ordq_queue_stats_json(db, S("nope"), &json, &err), ORDQ_NOT_FOUND);
    EXPECT_NULL(ordq_queue_pending_json(NULL, S(Q), false, 0, 10, &json, &err), "db");
    EXPECT_NULL(ordq_queue_pending_json(db, NULL, 4, false, 0, 10, &json, &err), "queue");
    EXPECT_NULL(ordq_queue_pending_json(db, S(Q), false, 0, 10, NULL, &err), "json_out");
    EXPECT_MSG(ordq_queue_pending_json(db, BAD_UTF8, 4, true, 1, 10, &json, &err),
               ORDQ_INVALID_ARGUMENT, "UTF-8");
    EXPECT(ordq_queue_pending_json(db, S("nope"), false, 0, 10, &json, &err), ORDQ_NOT_FOUND);
    CHECK(json.ptr == NULL && json.len == 0);

    /* ---- enqueue ---- */
    ordq_receipt rc;
    const uint8_t *pay = (const uint8_t *)"payload";
    EXPECT_NULL(ordq_enqueue(NULL, S(Q), S("k"), pay, 7, NULL, &rc, &err), "db");
    EXPECT_NULL(ordq_enqueue(db, NULL, 4, S("k"), pay, 7, NULL, &rc, &err), "queue");
    EXPECT_NULL(ordq_enqueue(db, S(Q), NULL, 1, pay, 7, NULL, &rc, &err), "key");
    EXPECT_NULL(ordq_enqueue(db, S(Q), S("k"), NULL, 7, NULL, &rc, &err), "payload");
    EXPECT_NULL(ordq_enqueue(db, S(Q), S("k"), pay, 7, NULL, NULL, &err), "receipt_out");
    EXPECT_MSG(ordq_enqueue(db, S(Q), BAD_UTF8, 4, pay, 7, NULL, &rc, &err),
               ORDQ_INVALID_ARGUMENT, "key");
    EXPECT(ordq_enqueue(db, BAD_UTF8, 4, S("k"), pay, 7, NULL, &rc, &err), ORDQ_INVALID_ARGUMENT);
    EXPECT(ordq_enqueue(db, S("nope"), S("k"), pay, 7, NULL, &rc, &err), ORDQ_NOT_FOUND);
    EXPECT(ordq_enqueue(db, S(Q), S("k"), (const uint8_t *)"0123456789abcdefX", 17, NULL, &rc,
                        &err),
           ORDQ_TOO_LARGE);
    {
        ordq_enqueue_options eo;
        ordq_enqueue_options_init(&eo);
        eo.headers_len = 2; /* headers NULL */
        EXPECT_NULL(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err), "opts.headers");
        ordq_header h[2] = {{NULL, 3, S("v")}, {S("n"), BAD_UTF8, 4}};
        eo.headers = h;
        eo.headers_len = 1;
        EXPECT_NULL(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err),
                    "opts.headers[0].name");
        eo.headers = h + 1;
        EXPECT_MSG(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err), ORDQ_INVALID_ARGUMENT,
                   "opts.headers[0].value");
        ordq_header empty_name = {"", 0, S("v")};
        eo.headers = &empty_name;
        EXPECT(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err), ORDQ_INVALID_ARGUMENT);
        ordq_header dup[2] = {{S("a"), S("1")}, {S("a"), S("2")}};
        eo.headers = dup;
        eo.headers_len = 2;
        EXPECT_MSG(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err), ORDQ_INVALID_ARGUMENT,
                   "duplicate");
        ordq_enqueue_options_init(&eo);
        eo.idempotency_key_len = 3; /* NULL key with a length */
        EXPECT(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err), ORDQ_INVALID_ARGUMENT);
        eo.idempotency_key = BAD_UTF8;
        eo.idempotency_key_len = 4;
        EXPECT(ordq_enqueue(db, S(Q), S("k"), pay, 7, &eo, &rc, &err), ORDQ_INVALID_ARGUMENT);
    }
    /* Empty payload may be NULL. */
    OK(ordq_enqueue(db, S(Q), S("k0"), NULL, 0, NULL, &rc, &err));
    CHECK(rc.offset == 0);

    ordq_enqueue_item items[2] = {{S("k1"), pay, 7, NULL}, {NULL, 2, pay, 7, NULL}};
    ordq_receipt rcs[2];
    EXPECT_NULL(ordq_enqueue_batch(NULL, S(Q), items, 1, rcs, &err), "db");
    EXPECT_NULL(ordq_enqueue_batch(db, NULL, 4, items, 1, rcs, &err), "queue");
    EXPECT_NULL(ordq_enqueue_batch(db, S(Q), NULL, 1, rcs, &err), "items");
    EXPECT_NULL(ordq_enqueue_batch(db, S(Q), items, 1, NULL, &err), "receipts_out");
    EXPECT_NULL(ordq_enqueue_batch(db, S(Q), items, 2, rcs, &err), "items[1].key");
    OK(ordq_enqueue_batch(db, S(Q), NULL, 0, NULL, &err));
    EXPECT(ordq_enqueue_batch(db, S("nope"), NULL, 0, NULL, &err), ORDQ_NOT_FOUND);
    /* All or nothing: the valid first item was not enqueued either. */
    OK(ordq_enqueue_batch(db, S(Q), items, 1, rcs, &err));
    CHECK(rcs[0].offset == 1);

    /* ---- claim and leases ---- */
    ordq_claim_options co;
    ordq_claim_options_init(&co);
    co.max = 10;
    ordq_lease_list *list = NULL;
    EXPECT_NULL(ordq_claim(NULL, S(Q), S("w"), &co, &list, &err), "db");
    EXPECT_NULL(ordq_claim(db, NULL, 4, S("w"), &co, &list, &err), "queue");
    EXPECT_NULL(ordq_claim(db, S(Q), NULL, 1, &co, &list, &err), "worker");
    EXPECT_NULL(ordq_claim(db, S(Q), S("w"), &co, NULL, &err), "list_out");
    EXPECT(ordq_claim(db, S(Q), NULL, 0, &co, &list, &err), ORDQ_INVALID_ARGUMENT);
    EXPECT_MSG(ordq_claim(db, S(Q), BAD_UTF8, 4, &co, &list, &err), ORDQ_INVALID_ARGUMENT,
               "worker");
    EXPECT(ordq_claim(db, S("nope"), S("w"), &co, &list, &err), ORDQ_NOT_FOUND);
    {
        ordq_claim_options bad = co;
        bad.shards_len = 2; /* shards NULL */
        EXPECT_NULL(ordq_claim(db, S(Q), S("w"), &bad, &list, &err), "opts.shards");
        uint32_t shard = 16; /* queue has 16 shards: 0..15 */
        bad.shards = &shard;
        bad.shards_len = 1;
        EXPECT(ordq_claim(db, S(Q), S("w"), &bad, &list, &err), ORDQ_INVALID_ARGUMENT);
        bad = co;
        bad.max = 0;
        EXPECT(ordq_claim(db, S(Q), S("w"), &bad, &list, &err), ORDQ_INVALID_ARGUMENT);
        bad.max = 10001;
        EXPECT(ordq_claim(db, S(Q), S("w"), &bad, &list, &err), ORDQ_INVALID_ARGUMENT);
    }
    CHECK(list == NULL);
    OK(ordq_claim(db, S(Q), S("w"), NULL, &list, &err)); /* NULL opts: max 1 */
    CHECK(ordq_lease_list_len(list) == 1);
    ordq_lease_list_free(list);
    list = NULL;
    OK(ordq_claim(db, S(Q), S("w"), &co, &list, &err));
    CHECK(ordq_lease_list_len(list) == 1); /* the other task, offset 1 */

    ordq_lease *lease = NULL;
    EXPECT_NULL(ordq_lease_list_take(NULL, 0, &lease, &err), "list");
    EXPECT_NULL(ordq_lease_list_take(list, 0, NULL, &err), "lease_out");
    EXPECT_MSG(ordq_lease_list_take(list, 5, &lease, &err), ORDQ_INVALID_ARGUMENT, "range");
    CHECK(ordq_lease_list_len(NULL) == 0);
    CHECK(ordq_lease_list_get(NULL, 0) == NULL);
    CHECK(ordq_lease_list_get(list, 1) == NULL);
    OK(ordq_lease_list_take(list, 0, &lease, &err));

    ordq_lease_info info;
    ordq_token tok;
    const char *sp;
    const uint8_t *bp;
    size_t n;
    EXPECT_NULL(ordq_lease_get_info(NULL, &info, &err), "lease");
    EXPECT_NULL(ordq_lease_get_info(lease, NULL, &err), "info_out");
    EXPECT_NULL(ordq_lease_token(NULL, &tok, &err), "lease");
    EXPECT_NULL(ordq_lease_token(lease, NULL, &err), "token_out");
    EXPECT_NULL(ordq_lease_key(NULL, &sp, &n, &err), "lease");
    EXPECT_NULL(ordq_lease_key(lease, NULL, &n, &err), "ptr_out");
    EXPECT_NULL(ordq_lease_key(lease, &sp, NULL, &err), "len_out");
    EXPECT_NULL(ordq_lease_id(NULL, &sp, &n, &err), "lease");
    EXPECT_NULL(ordq_lease_id(lease, NULL, &n, &err), "ptr_out");
    EXPECT_NULL(ordq_lease_id(lease, &sp, NULL, &err), "len_out");
    EXPECT_NULL(ordq_lease_queue(NULL, &sp, &n, &err), "lease");
    EXPECT_NULL(ordq_lease_queue(lease, NULL, &n, &err), "ptr_out");
    EXPECT_NULL(ordq_lease_queue(lease, &sp, NULL, &err), "len_out");
    EXPECT_NULL(ordq_lease_payload(NULL, &bp, &n, &err), "lease");
    EXPECT_NULL(ordq_lease_payload(lease, NULL, &n, &err), "ptr_out");
    EXPECT_NULL(ordq_lease_payload(lease, &bp, NULL, &err), "len_out");
    {
        const char *hn, *hv;
        size_t hnl, hvl;
        EXPECT_NULL(ordq_lease_header_get(NULL, 0, &hn, &hnl, &hv, &hvl, &err), "lease");
        EXPECT_NULL(ordq_lease_header_get(lease, 0, NULL, &hnl, &hv, &hvl, &err), "name_out");
        EXPECT_NULL(ordq_lease_header_get(lease, 0, &hn, NULL, &hv, &hvl, &err), "name_len_out");
        EXPECT_NULL(ordq_lease_header_get(lease, 0, &hn, &hnl, NULL, &hvl, &err), "value_out");
        EXPECT_NULL(ordq_lease_header_get(lease, 0, &hn, &hnl, &hv, NULL, &err),
                    "value_len_out");
        EXPECT_MSG(ordq_lease_header_get(lease, 0, &hn, &hnl, &hv, &hvl, &err),
                   ORDQ_INVALID_ARGUMENT, "out of range");
    }
    CHECK(ordq_lease_offset(NULL) == 0 && ordq_lease_attempt(NULL) == 0);
    CHECK(ordq_lease_max_attempts(NULL) == 0 && ordq_lease_shard(NULL) == 0);
    CHECK(ordq_lease_priority(NULL) == 0 && ordq_lease_enqueued_at(NULL) == 0);
    CHECK(ordq_lease_leased_at(NULL) == 0 && ordq_lease_expires_at(NULL) == 0);
    CHECK(ordq_lease_header_count(NULL) == 0);
    OK(ordq_lease_token(lease, &tok, &err));
    CHECK(tok.offset == 1);

    /* ---- lease operations ---- */
    ordq_token stale = tok;
    stale.fence += 1000;
    ordq_token foreign = tok;
    foreign.queue_id += 77;
    uint64_t expires;
    ordq_completion comp;
    ordq_fail_outcome fo;
    EXPECT_NULL(ordq_heartbeat(NULL, tok, 0, &expires, &err), "db");
    EXPECT_NULL(ordq_heartbeat(db, tok, 0, NULL, &err), "expires_out");
    EXPECT(ordq_heartbeat(db, stale, 0, &expires, &err), ORDQ_LEASE_LOST);
    EXPECT(ordq_heartbeat(db, foreign, 0, &expires, &err), ORDQ_LEASE_LOST);
    EXPECT_NULL(ordq_start(NULL, tok, &err), "db");
    EXPECT(ordq_start(db, stale, &err), ORDQ_LEASE_LOST);
    EXPECT_NULL(ordq_complete(NULL, tok, NULL, 0, &comp, &err), "db");
    EXPECT_NULL(ordq_complete(db, tok, NULL, 3, &comp, &err), "result");
    EXPECT_NULL(ordq_complete(db, tok, NULL, 0, NULL, &err), "completion_out");
    EXPECT(ordq_complete(db, stale, NULL, 0, &comp, &err), ORDQ_LEASE_LOST);
    EXPECT_NULL(ordq_fail(NULL, tok, S("e"), true, &fo, &err), "db");
    EXPECT_NULL(ordq_fail(db, tok, NULL, 3, true, &fo, &err), "error");
    EXPECT_NULL(ordq_fail(db, tok, S("e"), true, NULL, &err), "outcome_out");
    EXPECT(ordq_fail(db, stale, S("e"), true, &fo, &err), ORDQ_LEASE_LOST);
    EXPECT_NULL(ordq_release(NULL, tok, &err), "db");
    EXPECT(ordq_release(db, stale, &err), ORDQ_LEASE_LOST);
    {
        ordq_complete_item ci[1] = {{tok, NULL, 0}};
        ordq_completion outs[1];
        ordq_status sts[1];
        EXPECT_NULL(ordq_complete_batch(NULL, ci, 1, outs, sts, &err), "db");
        EXPECT_NULL(ordq_complete_batch(db, NULL, 1, outs, sts, &err), "items");
        EXPECT_NULL(ordq_complete_batch(db, ci, 1, NULL, sts, &err), "completions_out");
        EXPECT_NULL(ordq_complete_batch(db, ci, 1, outs, NULL, &err), "statuses_out");
        ci[0].result_len = 4; /* result NULL */
        EXPECT_NULL(ordq_complete_batch(db, ci, 1, outs, sts, &err), "items[0].result");
        ci[0].token = stale;
        ci[0].result_len = 0;
        OK(ordq_complete_batch(db, ci, 1, outs, sts, &err));
        CHECK(sts[0] == ORDQ_LEASE_LOST);
    }
    /* The lease is still live after all that: fail it with invalid UTF-8
     * error text, which is repaired (U+FFFD), not refused. */
    OK(ordq_fail(db, tok, BAD_UTF8, 4, true, &fo, &err));
    CHECK(!fo.dead && fo.attempt == 1);
    EXPECT(ordq_fail(db, tok, S("again"), true, &fo, &err), ORDQ_LEASE_LOST);
    ordq_lease_free(lease);
    lease = NULL;
    ordq_lease_list_free(list);
    list = NULL;

    /* ---- tasks and dead letters ---- */
    EXPECT_NULL(ordq_task_get_json(NULL, S(Q), 0, &json, &err), "db");
    EXPECT_NULL(ordq_task_get_json(db, NULL, 4, 0, &json, &err), "queue");
    EXPECT_NULL(ordq_task_get_json(db, S(Q), 0, NULL, &err), "json_out");
    EXPECT(ordq_task_get_json(db, S("nope"), 0, &json, &err), ORDQ_NOT_FOUND);
    EXPECT(ordq_task_get_json(db, S(Q), 999, &json, &err), ORDQ_NOT_FOUND);
    EXPECT_NULL(ordq_task_faults_json(NULL, S(Q), 1, &json, &err), "db");
    EXPECT_NULL(ordq_task_faults_json(db, NULL, 4, 1, &json, &err), "queue");
    EXPECT_NULL(ordq_task_faults_json(db, S(Q), 1, NULL, &err), "json_out");
    EXPECT(ordq_task_faults_json(db, S(Q), 999, &json, &err), ORDQ_NOT_FOUND);
    OK(ordq_task_faults_json(db, S(Q), 1, &json, &err));
    CHECK(strstr((const char *)json.ptr, "ab\xef\xbf\xbd") != NULL); /* "ab" + U+FFFD */
    ordq_bytes_free(&json);
    EXPECT_NULL(ordq_dlq_list_json(NULL, S(Q), false, 0, 10, &json, &err), "db");
    EXPECT_NULL(ordq_dlq_list_json(db, NULL, 4, false, 0, 10, &json, &err), "queue");
    EXPECT_NULL(ordq_dlq_list_json(db, S(Q), false, 0, 10, NULL, &err), "json_out");
    EXPECT(ordq_dlq_list_json(db, S("nope"), false, 0, 10, &json, &err), ORDQ_NOT_FOUND);
    EXPECT_NULL(ordq_dlq_get_json(NULL, S(Q), 0, &json, &err), "db");
    EXPECT_NULL(ordq_dlq_get_json(db, NULL, 4, 0, &json, &err), "queue");
    EXPECT_NULL(ordq_dlq_get_json(db, S(Q), 0, NULL, &err), "json_out");
    EXPECT(ordq_dlq_get_json(db, S(Q), 0, &json, &err), ORDQ_NOT_FOUND); /* not dead */
    ordq_receipt rr;
    EXPECT_NULL(ordq_dlq_redrive(NULL, S(Q), 0, ORDQ_REDRIVE_HEAD, &rr, &err), "db");
    EXPECT_NULL(ordq_dlq_redrive(db, NULL, 4, 0, ORDQ_REDRIVE_HEAD, &rr, &err), "queue");
    EXPECT_NULL(ordq_dlq_redrive(db, S(Q), 0, ORDQ_REDRIVE_HEAD, NULL, &err), "receipt_out");
    EXPECT_MSG(ordq_dlq_redrive(db, S(Q), 0, 7, &rr, &err), ORDQ_INVALID_ARGUMENT, "mode");
    EXPECT(ordq_dlq_redrive(db, S(Q), 0, ORDQ_REDRIVE_HEAD, &rr, &err), ORDQ_INVALID_STATE);
    EXPECT(ordq_dlq_redrive(db, S(Q), 999, ORDQ_REDRIVE_NEW_OFFSET, &rr, &err), ORDQ_NOT_FOUND);
    uint64_t purged;
    EXPECT_NULL(ordq_dlq_purge(NULL, S(Q), true, 0, &purged, &err), "db");
    EXPECT_NULL(ordq_dlq_purge(db, NULL, 4, true, 0, &purged, &err), "queue");
    EXPECT_NULL(ordq_dlq_purge(db, S(Q), true, 0, NULL, &err), "purged_out");
    EXPECT(ordq_dlq_purge(db, S(Q), false, 0, &purged, &err), ORDQ_INVALID_STATE);
    EXPECT(ordq_dlq_purge(db, S(Q), false, 999, &purged, &err), ORDQ_NOT_FOUND);

    /* ---- err_out NULL on failure: status only, nothing leaks ---- */
    CHECK(ordq_queue_get(db, S("nope"), &got, NULL) == ORDQ_NOT_FOUND);
    CHECK(ordq_open(NULL, 3, NULL, &db, NULL) == ORDQ_NULL_POINTER);
    CHECK(ordq_heartbeat(db, stale, 0, &expires, NULL) == ORDQ_LEASE_LOST);
    CHECK(ordq_enqueue(db, S(Q), BAD_UTF8, 4, NULL, 0, NULL, &rc, NULL) ==
          ORDQ_INVALID_ARGUMENT);

    /* ---- errors, strings, statuses ---- */
    CHECK(ordq_error_code(NULL) == ORDQ_NULL_POINTER);
    CHECK(ordq_error_message(NULL) != NULL && ordq_error_message(NULL)[0] != '\0');
    CHECK(strcmp(ordq_status_name(999), "UNKNOWN") == 0);
    CHECK(strcmp(ordq_status_name(-1), "UNKNOWN") == 0);
    CHECK(strcmp(ordq_status_name(ORDQ_NULL_POINTER), "NULL_POINTER") == 0);
    CHECK(strcmp(ordq_status_name(ORDQ_PANIC), "PANIC") == 0);
    CHECK(ordq_string_list_len(NULL) == 0);
    CHECK(ordq_string_list_get(NULL, 0) == NULL);
    OK(ordq_queue_list(db, &names, &err));
    CHECK(ordq_string_list_len(names) == 2 && ordq_string_list_get(names, 2) == NULL);
    ordq_string_list_free(names);

    /* ---- init functions tolerate NULL ---- */
    ordq_options_init(NULL);
    ordq_queue_config_init(NULL);
    ordq_enqueue_options_init(NULL);
    ordq_claim_options_init(NULL);

    /* ---- close: idempotent, then every call is ORDQ_CLOSED ---- */
    EXPECT_NULL(ordq_db_close(NULL, &err), "db");
    EXPECT_NULL(ordq_db_sync(NULL, &err), "db");
    OK(ordq_db_close(db, &err));
    OK(ordq_db_close(db, &err));
    EXPECT(ordq_db_sync(db, &err), ORDQ_CLOSED);
    EXPECT(ordq_queue_create(db, S("later"), NULL, &err), ORDQ_CLOSED);
    EXPECT(ordq_queue_get(db, S(Q), &got, &err), ORDQ_CLOSED);
    EXPECT(ordq_queue_list(db, &names, &err), ORDQ_CLOSED);
    EXPECT(ordq_queue_stats_json(db, S(Q), &json, &err), ORDQ_CLOSED);
    EXPECT(ordq_enqueue(db, S(Q), S("k"), NULL, 0, NULL, &rc, &err), ORDQ_CLOSED);
    EXPECT(ordq_claim(db, S(Q), S("w"), NULL, &list, &err), ORDQ_CLOSED);
    EXPECT(ordq_heartbeat(db, tok, 0, &expires, &err), ORDQ_CLOSED);
    EXPECT(ordq_complete(db, tok, NULL, 0, &comp, &err), ORDQ_CLOSED);
    EXPECT(ordq_task_get_json(db, S(Q), 0, &json, &err), ORDQ_CLOSED);
    EXPECT(ordq_dlq_list_json(db, S(Q), false, 0, 10, &json, &err), ORDQ_CLOSED);
    EXPECT(ordq_queue_pending_json(db, S(Q), false, 0, 10, &json, &err), ORDQ_CLOSED);
    /* The file is free again once closed. */
    {
        ordq_db *again = NULL;
        OK(ordq_open(S(path), NULL, &again, &err));
        ordq_db_free(again); /* free closes */
    }
    ordq_db_free(db);

    /* ---- every _free accepts NULL, twice ---- */
    for (int i = 0; i < 2; i++) {
        ordq_db_free(NULL);
        ordq_error_free(NULL);
        ordq_bytes_free(NULL);
        ordq_string_list_free(NULL);
        ordq_lease_list_free(NULL);
        ordq_lease_free(NULL);
    }
    {
        ordq_bytes zero = {NULL, 0};
        ordq_bytes_free(&zero);
        ordq_bytes_free(&zero);
    }

    unlink(path);
    rmdir(dir);
    printf("bad_input: %d passed, 0 failed\n", checks);
    return 0;
}
