/* Pure C test of the C ABI: compiles as C11 against weft.h only. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft/weft.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    ++checks;                                                                         \
    if (!(cond)) {                                                                    \
      ++failures;                                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, weft_last_error_message());                                      \
    }                                                                                 \
  } while (0)

/* A counter resource served from C: increment(i64) -> i64 (method 0), value() -> i64 (1). */
static int64_t counter_value = 0;
static char counter_caller[128];  /* the identity the last call's caller had */
static void counter_handler(void* ctx, int method, const void* const* args, const size_t* sizes, size_t nargs,
                            weft_rpc_reply_t* reply) {
  (void)ctx;
  if (weft_rpc_reply_caller(reply, counter_caller, sizeof(counter_caller)) != WEFT_OK) counter_caller[0] = '?';
  if (method == 0) {
    int64_t by = 0;
    if (nargs != 1 || sizes[0] != 8) {
      weft_rpc_reply_error(reply, WEFT_EINVAL, "increment takes one i64");
      return;
    }
    memcpy(&by, args[0], 8);
    counter_value += by;
  }
  weft_rpc_reply_set(reply, &counter_value, 8);
}

/* A feed served from C: big(n) -> n bytes (method 0), count(n) -> stream of i64 (1), spin() runs
   until cancelled (2), sum(bytes) -> i64 (3). */
static atomic_int feed_saw_cancel = 0;
static atomic_int feed_stream_stopped = 0;
static void feed_handler(void* ctx, int method, const void* const* args, const size_t* sizes, size_t nargs,
                         weft_rpc_reply_t* reply) {
  (void)ctx;
  int64_t n = 0;
  if (method != 2 && method != 3 && (nargs != 1 || sizes[0] != 8)) {
    weft_rpc_reply_error(reply, WEFT_EINVAL, "takes one i64");
    return;
  }
  if (method == 0 || method == 1) memcpy(&n, args[0], 8);
  if (method == 0) {
    unsigned char* buf = malloc((size_t)n);
    for (int64_t i = 0; i < n; ++i) buf[i] = (unsigned char)(i & 0xff);
    weft_rpc_reply_set(reply, buf, (size_t)n);
    free(buf);
  } else if (method == 1) {
    for (int64_t i = 0; i < n; ++i) {
      if (weft_rpc_reply_yield(reply, &i, 8) != WEFT_OK) {
        feed_stream_stopped = 1;
        return;
      }
    }
  } else if (method == 2) {
    int64_t one = 1;
    while (!weft_rpc_reply_cancelled(reply)) usleep(200);
    feed_saw_cancel = 1;
    weft_rpc_reply_set(reply, &one, 8);
  } else {
    int64_t total = 0;
    const unsigned char* b = args[0];
    for (size_t i = 0; i < sizes[0]; ++i) total += b[i];
    weft_rpc_reply_set(reply, &total, 8);
  }
}

static void* cancel_later(void* token) {
  usleep(100000);
  weft_rpc_cancel((weft_rpc_cancel_t*)token);
  return NULL;
}

/* A loopback port nothing listens on now. */
static int free_port(void) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  bind(fd, (struct sockaddr*)&a, sizeof(a));
  getsockname(fd, (struct sockaddr*)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static int accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int ok = connect(fd, (struct sockaddr*)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* A graph observer: counts values, keeps the last one and its envelope. */
struct seen_values {
  int count;
  double last;
  weft_envelope_t env;
};
static void on_value(void* ctx, const void* data, size_t size, const weft_envelope_t* env) {
  struct seen_values* s = (struct seen_values*)ctx;
  if (size == sizeof(double)) memcpy(&s->last, data, sizeof(double));
  s->env = *env;
  s->count++;
}

int main(void) {
  char name[64];
  snprintf(name, sizeof(name), "test.capi.%d", (int)getpid());

  CHECK(weft_abi_version() == WEFT_ABI_VERSION);
  CHECK(strcmp(weft_error_name(WEFT_EPEERDEAD), "peer_dead") == 0);
  CHECK(strcmp(weft_error_name(WEFT_ERESOURCE), "resource_exhausted") == 0);
  CHECK(strcmp(weft_error_name(WEFT_EUNAVAILABLE), "unavailable") == 0);
  CHECK(weft_error_retry(WEFT_EWOULDBLOCK) == WEFT_RETRY_WHEN_READY);
  CHECK(weft_error_retry(WEFT_EUNAVAILABLE) == WEFT_RETRY_BACKOFF);
  CHECK(weft_error_retry(WEFT_ECORRUPT) == WEFT_RETRY_NO);

  weft_channel_options_t opt;
  weft_channel_options_init(&opt);
  opt.capacity = 4096;
  opt.max_record = 256;
  weft_channel_t* tx = NULL;
  weft_channel_t* rx = NULL;
  CHECK(weft_channel_create("bad/name", &opt, &tx) == WEFT_EINVAL);
  CHECK(strstr(weft_last_error_message(), "invalid_argument") != NULL);
  CHECK(weft_channel_open(name, WEFT_ROLE_CONSUMER, &rx) == WEFT_ENOTFOUND);
  CHECK(weft_channel_create(name, &opt, &tx) == WEFT_OK);
  CHECK(strcmp(weft_last_error_message(), "") == 0); /* a success leaves no old message behind */
  CHECK(weft_channel_open(name, WEFT_ROLE_CONSUMER, &rx) == WEFT_OK);
  weft_channel_t* second = NULL;
  CHECK(weft_channel_open(name, WEFT_ROLE_CONSUMER, &second) == WEFT_EBUSY);
  CHECK(second == NULL);

  /* zero-copy path */
  void* buf = NULL;
  CHECK(weft_channel_reserve(tx, 5, 0, &buf) == WEFT_OK);
  memcpy(buf, "hello", 5);
  CHECK(weft_channel_commit(tx, 5) == WEFT_OK);
  const void* data = NULL;
  size_t n = 0;
  CHECK(weft_channel_read(rx, 1000000000, &data, &n) == WEFT_OK);
  CHECK(n == 5 && memcmp(data, "hello", 5) == 0);
  CHECK(weft_channel_release(rx, 1) == WEFT_OK);
  CHECK(weft_channel_read(rx, 0, &data, &n) == WEFT_EWOULDBLOCK);
  CHECK(weft_channel_read(rx, 1000000, &data, &n) == WEFT_ETIMEOUT);

  /* copying path and oversize handling */
  char big[300];
  memset(big, 'x', sizeof(big));
  CHECK(weft_channel_write(tx, big, sizeof(big), -1) == WEFT_ETOOLARGE);
  CHECK(weft_channel_write(tx, "copy", 4, 0) == WEFT_OK);
  char small[2];
  CHECK(weft_channel_read_into(rx, small, sizeof(small), &n, 0) == WEFT_ETOOLARGE);
  CHECK(n == 4);
  char out[16];
  CHECK(weft_channel_read_into(rx, out, sizeof(out), &n, 0) == WEFT_OK);
  CHECK(n == 4 && memcmp(out, "copy", 4) == 0);

  /* batching */
  for (int i = 0; i < 3; ++i) {
    CHECK(weft_channel_reserve(tx, 1, 0, &buf) == WEFT_OK);
    ((char*)buf)[0] = (char)('a' + i);
    CHECK(weft_channel_commit_batched(tx, 1) == WEFT_OK);
  }
  CHECK(weft_channel_read(rx, 0, &data, &n) == WEFT_EWOULDBLOCK);
  CHECK(weft_channel_flush(tx) == WEFT_OK);
  for (int i = 0; i < 3; ++i) {
    CHECK(weft_channel_read(rx, 0, &data, &n) == WEFT_OK);
    CHECK(n == 1 && ((const char*)data)[0] == 'a' + i);
  }
  CHECK(weft_channel_release(rx, 3) == WEFT_OK);

  /* pollable descriptor */
  int fd = -1;
  CHECK(weft_channel_wait_fd(rx, &fd) == WEFT_OK);
  CHECK(weft_channel_read(rx, 0, &data, &n) == WEFT_EWOULDBLOCK);
  CHECK(weft_channel_write(tx, "poll", 4, 0) == WEFT_OK);
  struct pollfd p = {fd, POLLIN, 0};
  CHECK(poll(&p, 1, 5000) == 1);
  CHECK(weft_channel_read_into(rx, out, sizeof(out), &n, 0) == WEFT_OK);

  /* stats */
  weft_channel_stats_t st;
  memset(&st, 0, sizeof(st));
  CHECK(weft_channel_stats(tx, &st) == WEFT_EINVAL); /* struct_size not set */
  st.struct_size = sizeof(st);
  CHECK(weft_channel_stats(tx, &st) == WEFT_OK);
  CHECK(st.records_in == 6 && st.records_out == 6);
  CHECK(st.capacity == 4096 && st.max_record == 256);

  /* clean close is seen by the peer */
  CHECK(weft_channel_close(tx) == WEFT_OK);
  CHECK(weft_channel_read(rx, 1000000000, &data, &n) == WEFT_ECLOSED);
  CHECK(weft_channel_close(rx) == WEFT_OK);
  CHECK(weft_channel_close(NULL) == WEFT_OK);
  CHECK(weft_channel_unlink(name) == WEFT_OK);
  CHECK(weft_channel_unlink(name) == WEFT_ENOTFOUND);

  /* pool */
  char pname[64];
  snprintf(pname, sizeof(pname), "test.capipool.%d", (int)getpid());
  weft_pool_t* pool = NULL;
  CHECK(weft_pool_open(pname, NULL, &pool) == WEFT_ENOTFOUND);
  weft_pool_options_t popt;
  weft_pool_options_init(&popt);
  popt.bytes = 1 << 20;
  popt.max_block = 1 << 22;
  CHECK(weft_pool_open(pname, &popt, &pool) == WEFT_OK);
  uint64_t block = 0;
  CHECK(weft_pool_allocate(pool, (1 << 22) + 1, &block) == WEFT_ETOOLARGE);
  CHECK(weft_pool_allocate(pool, 100, &block) == WEFT_OK);
  void* bytes = NULL;
  size_t bsize = 0;
  CHECK(weft_pool_data(pool, block, &bytes, &bsize) == WEFT_OK);
  CHECK(bsize == 128 && ((uintptr_t)bytes % 64) == 0);
  memcpy(bytes, "pooled", 7);
  weft_pool_t* other = NULL;
  CHECK(weft_pool_open(pname, NULL, &other) == WEFT_OK);
  CHECK(weft_pool_hold(other, block) == WEFT_OK);
  CHECK(weft_pool_release(pool, block) == WEFT_OK);
  void* seen = NULL;
  CHECK(weft_pool_data(other, block, &seen, &bsize) == WEFT_OK);
  CHECK(strcmp((const char*)seen, "pooled") == 0);
  CHECK(weft_pool_release(other, block) == WEFT_OK);
  CHECK(weft_pool_release(other, block) == WEFT_EINVAL); /* not held any more */
  CHECK(weft_pool_hold(other, block) == WEFT_EINVAL);    /* free blocks cannot be held */
  size_t recovered = 99;
  CHECK(weft_pool_recover(pool, &recovered) == WEFT_OK && recovered == 0);
  CHECK(weft_pool_close(other) == WEFT_OK);
  CHECK(weft_pool_close(pool) == WEFT_OK);
  CHECK(weft_pool_unlink(pname) == WEFT_OK);

  /* topics */
  char tname[64];
  snprintf(tname, sizeof(tname), "test.capitopic.%d", (int)getpid());
  weft_topic_options_t topt;
  weft_topic_options_init(&topt);
  topt.queue_depth = 4;
  topt.pool_bytes = 1 << 20;
  weft_publisher_t* pub = NULL;
  weft_subscriber_t* sub = NULL;
  CHECK(weft_publisher_open(tname, &topt, &pub) == WEFT_OK);
  CHECK(weft_subscriber_open(tname, 7, 0, NULL, &sub) == WEFT_EINVAL);
  CHECK(weft_subscriber_open(tname, WEFT_ON_FULL_BLOCK, 0, NULL, &sub) == WEFT_OK);
  weft_sample_t sample;
  CHECK(weft_subscriber_take(sub, 0, &sample) == WEFT_EWOULDBLOCK);
  uint64_t tblock = 0;
  void* tdata = NULL;
  for (int i = 0; i < 4; ++i) {
    CHECK(weft_publisher_loan(pub, 16, &tblock, &tdata) == WEFT_OK);
    snprintf((char*)tdata, 16, "sample %d", i);
    CHECK(weft_publisher_publish(pub, tblock, 16, 0) == WEFT_OK);
  }
  CHECK(weft_publisher_loan(pub, 16, &tblock, &tdata) == WEFT_OK);
  CHECK(weft_publisher_publish(pub, tblock, 16, 1000000) == WEFT_ETIMEOUT); /* queue full */
  CHECK(weft_publisher_discard(pub, tblock) == WEFT_OK);
  for (int i = 0; i < 4; ++i) {
    CHECK(weft_subscriber_take(sub, 1000000000, &sample) == WEFT_OK);
    char want[16];
    snprintf(want, sizeof(want), "sample %d", i);
    CHECK(sample.seq == (uint64_t)(i + 1) && strcmp((const char*)sample.data, want) == 0);
    CHECK(weft_subscriber_release(sub, sample.block) == WEFT_OK);
  }
  int tfd = -1;
  CHECK(weft_subscriber_wait_fd(sub, &tfd) == WEFT_OK && tfd >= 0);
  CHECK(weft_subscriber_close(sub) == WEFT_OK);
  /* weft_subscribe takes WEFT_OVERFLOW_*: FAIL refuses a publish to a full queue at once. */
  CHECK(weft_subscribe(tname, 9, 0, NULL, &sub) == WEFT_EINVAL && sub == NULL);
  CHECK(weft_subscribe(tname, WEFT_OVERFLOW_FAIL, 0, NULL, &sub) == WEFT_OK);
  for (int i = 0; i < 4; ++i) {
    CHECK(weft_publisher_loan(pub, 16, &tblock, &tdata) == WEFT_OK);
    CHECK(weft_publisher_publish(pub, tblock, 16, -1) == WEFT_OK);
  }
  CHECK(weft_publisher_loan(pub, 16, &tblock, &tdata) == WEFT_OK);
  CHECK(weft_publisher_publish(pub, tblock, 16, -1) == WEFT_ERESOURCE); /* no wait, although no limit */
  CHECK(weft_publisher_discard(pub, tblock) == WEFT_OK);
  CHECK(weft_subscriber_close(sub) == WEFT_OK);
  CHECK(weft_publisher_close(pub) == WEFT_OK);
  CHECK(weft_topic_unlink(tname) == WEFT_OK); /* the topic and its pool */
  CHECK(weft_topic_unlink(tname) == WEFT_ENOTFOUND);
  char tpool[80];
  snprintf(tpool, sizeof(tpool), "%s.pool", tname);
  CHECK(weft_pool_unlink(tpool) == WEFT_ENOTFOUND); /* went with it */

  /* ---- log ---- */
  char ldir[] = "/tmp/weft-capi-log-XXXXXX";
  CHECK(mkdtemp(ldir) != NULL);
  char lpath[64];
  snprintf(lpath, sizeof(lpath), "%s/log", ldir);
  weft_log_options_t lopt;
  weft_log_options_init(&lopt);
  lopt.fsync = WEFT_FSYNC_ALWAYS;
  lopt.segment_bytes = 8192;
  weft_log_t* lg = NULL;
  CHECK(weft_log_open(lpath, &lopt, &lg) == WEFT_OK);
  weft_log_t* lg2 = NULL;
  CHECK(weft_log_open(lpath, &lopt, &lg2) == WEFT_EBUSY && lg2 == NULL);
  uint64_t seq = 99;
  CHECK(weft_log_append(lg, "first", 5, 7, &seq) == WEFT_OK && seq == 0);
  const void* recs[3] = {"a", "bb", "ccc"};
  size_t sizes[3] = {1, 2, 3};
  uint64_t first = 0;
  CHECK(weft_log_append_batch(lg, recs, sizes, 3, 0, &first) == WEFT_OK && first == 1);
  CHECK(weft_log_append_batch(lg, NULL, NULL, 0, 0, &first) == WEFT_OK && first == WEFT_LOG_NONE);
  CHECK(weft_log_next_seq(lg) == 4 && weft_log_first_seq(lg) == 0);
  weft_log_record_t rec;
  CHECK(weft_log_read(lg, 0, &rec) == WEFT_OK && rec.size == 5 && memcmp(rec.data, "first", 5) == 0 && rec.flags == 7);
  CHECK(weft_log_read(lg, 4, &rec) == WEFT_ERANGE);
  CHECK(weft_log_sync(lg) == WEFT_OK);
  weft_log_stats_t lst;
  memset(&lst, 0, sizeof(lst));
  lst.struct_size = sizeof(lst);
  CHECK(weft_log_stats(lg, &lst) == WEFT_OK && lst.durable_seq == 4 && lst.writer_pid > 0);
  weft_log_options_t ropt;
  weft_log_options_init(&ropt);
  ropt.read_only = 1;
  weft_log_t* reader = NULL;
  CHECK(weft_log_open(lpath, &ropt, &reader) == WEFT_OK);
  CHECK(weft_log_append(reader, "x", 1, 0, NULL) == WEFT_EPERM);
  weft_log_tail_t* tail = NULL;
  CHECK(weft_log_tail_open(reader, 1, &tail) == WEFT_OK);
  for (uint64_t want = 1; want < 4; ++want) {
    CHECK(weft_log_tail_next(tail, 1000000000, &rec) == WEFT_OK && rec.seq == want && rec.size == want);
  }
  CHECK(weft_log_tail_next(tail, 0, &rec) == WEFT_EWOULDBLOCK);
  CHECK(weft_log_append(lg, "live", 4, 0, &seq) == WEFT_OK && seq == 4);
  CHECK(weft_log_tail_next(tail, 1000000000, &rec) == WEFT_OK && rec.seq == 4 && memcmp(rec.data, "live", 4) == 0);
  weft_log_tail_cancel(tail);
  CHECK(weft_log_tail_next(tail, 1000000000, &rec) == WEFT_ECLOSED);
  weft_log_tail_free(tail);
  CHECK(weft_log_verify(reader) == WEFT_OK);
  CHECK(weft_log_close(reader) == WEFT_OK);
  CHECK(weft_log_close(lg) == WEFT_OK);
  CHECK(weft_log_open(lpath, &lopt, &lg) == WEFT_OK && weft_log_next_seq(lg) == 5);
  CHECK(weft_log_close(lg) == WEFT_OK);
  {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", ldir);
    CHECK(system(cmd) == 0);
  }

  /* ---- rpc ---- */
  const char* counter =
      "weft-contract 1\nnamespace demo.counter\nname Counter\nversion 0.1.0\n"
      "method increment write i64 -> i64\nmethod value read -> i64\n";
  char hash[33];
  CHECK(weft_rpc_contract_hash(counter, hash) == WEFT_OK && strlen(hash) == 32);
  CHECK(weft_rpc_contract_hash("not a contract\n", hash) == WEFT_ECORRUPT);
  char sid[64];
  snprintf(sid, sizeof(sid), "capi-%d", (int)getpid());
  char address[80];
  snprintf(address, sizeof(address), "ipc://%s", sid);
  weft_rpc_server_t* server = NULL;
  CHECK(weft_rpc_server_create(sid, &server) == WEFT_OK);
  CHECK(weft_rpc_server_register(server, "counter", counter, counter_handler, NULL) == WEFT_OK);
  CHECK(weft_rpc_server_start(server) == WEFT_OK);
  weft_rpc_client_t* client = NULL;
  CHECK(weft_rpc_client_connect(counter, "counter", address, 10000000000, &client) == WEFT_OK);
  int64_t five = 5;
  const void* cargs[1] = {&five};
  size_t csizes[1] = {8};
  void* res = NULL;
  size_t res_size = 0;
  for (int i = 1; i <= 3; ++i) {
    CHECK(weft_rpc_client_call(client, "increment", cargs, csizes, 1, 10000000000, &res, &res_size) == WEFT_OK);
    int64_t got = 0;
    if (res_size == 8) memcpy(&got, res, 8);
    CHECK(res_size == 8 && got == 5 * i);
    weft_free(res);
  }
  size_t bad_size[1] = {3};
  CHECK(weft_rpc_client_call(client, "increment", cargs, bad_size, 1, 10000000000, &res, &res_size) == WEFT_EINVAL);
  CHECK(strstr(weft_last_error_message(), "increment takes one i64") != NULL);
  CHECK(weft_rpc_client_call(client, "nope", NULL, NULL, 0, 10000000000, &res, &res_size) == WEFT_EINVAL);
  const char* counter_v2 =
      "weft-contract 1\nnamespace demo.counter\nname Counter\nversion 0.2.0\n"
      "method increment write f64 -> i64\nmethod value read -> i64\n";
  weft_rpc_client_t* mismatched = NULL;
  CHECK(weft_rpc_client_connect(counter_v2, "counter", address, 10000000000, &mismatched) == WEFT_ECONTRACT);
  CHECK(strstr(weft_last_error_message(), "method 'increment' takes (i64) on the server, (f64) on the client") != NULL);
  CHECK(weft_rpc_client_connect(counter, "nothing", address, 10000000000, &mismatched) == WEFT_ENOTFOUND);
  CHECK(strncmp(counter_caller, "uid:", 4) == 0); /* ipc: the kernel's word for who calls */
  CHECK(weft_rpc_client_close(client) == WEFT_OK);

  /* The same resource over tcp:// (plaintext, said explicitly). */
  {
    char tid[64];
    snprintf(tid, sizeof(tid), "capi-tcp-%d", (int)getpid());
    weft_rpc_tcp_options_t topts;
    memset(&topts, 0, sizeof(topts));
    topts.struct_size = sizeof(topts);
    topts.listen = "tcp://127.0.0.1:0";
    weft_rpc_server_t* ts = NULL;
    CHECK(weft_rpc_server_create_tcp(tid, &topts, &ts) == WEFT_EINVAL); /* TLS wants a key: none given */
    topts.plaintext = 1;
    CHECK(weft_rpc_server_create_tcp(tid, &topts, &ts) == WEFT_OK);
    CHECK(weft_rpc_server_register(ts, "counter", counter, counter_handler, NULL) == WEFT_OK);
    CHECK(weft_rpc_server_start(ts) == WEFT_OK);
    char taddr[128];
    CHECK(weft_rpc_server_address(ts, 1, taddr, sizeof(taddr)) == WEFT_OK && strncmp(taddr, "tcp://127.0.0.1:", 16) == 0);
    CHECK(weft_rpc_server_address(ts, 2, taddr + 100, 28) == WEFT_ERANGE);
    CHECK(weft_rpc_server_address(ts, 1, taddr + 100, 4) == WEFT_ERANGE);
    weft_rpc_client_t* tc = NULL;
    CHECK(weft_rpc_client_connect_tcp(counter, "counter", taddr, 10000000000, &topts, &tc) == WEFT_OK);
    const int64_t before = counter_value;
    CHECK(weft_rpc_client_call(tc, "increment", cargs, csizes, 1, 10000000000, &res, &res_size) == WEFT_OK);
    CHECK(res_size == 8 && counter_value == before + 5);
    weft_free(res);
    CHECK(counter_caller[0] == '\0'); /* plaintext proves nobody */
    CHECK(weft_rpc_client_close(tc) == WEFT_OK);
    /* A circuit breaker: once the server is gone, one failure opens it and calls fail at once. */
    topts.breaker_failures = 1;
    topts.breaker_open_ms = 60000;
    CHECK(weft_rpc_client_connect_tcp(counter, "counter", taddr, 10000000000, &topts, &tc) == WEFT_OK);
    CHECK(weft_rpc_server_close(ts) == WEFT_OK);
    CHECK(weft_rpc_client_call(tc, "increment", cargs, csizes, 1, 10000000000, &res, &res_size) != WEFT_OK);
    CHECK(weft_rpc_client_call(tc, "increment", cargs, csizes, 1, 10000000000, &res, &res_size) == WEFT_EUNAVAILABLE);
    CHECK(strstr(weft_last_error_message(), "circuit open") != NULL);
    CHECK(weft_rpc_client_close(tc) == WEFT_OK);
    topts.breaker_failures = 0;

    /* Discovery: the server announces itself at a NATS registry; the client names the registry
       as its address. A caller built before the discovery fields (a smaller struct_size) gets
       a server that announces nothing. */
    const int nport = free_port();
    char nport_s[16], ndir[64], registry[64];
    snprintf(nport_s, sizeof(nport_s), "%d", nport);
    snprintf(ndir, sizeof(ndir), "/tmp/weft-capi-nats-%d", (int)getpid());
    snprintf(registry, sizeof(registry), "nats://127.0.0.1:%d", nport);
    const pid_t nats = fork();
    if (nats == 0) {
      freopen("/dev/null", "w", stdout);
      freopen("/dev/null", "w", stderr);
      execl("/usr/sbin/nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", nport_s, "-sd", ndir, (char*)NULL);
      _exit(127);
    }
    int up = 0;
    for (int i = 0; i < 3000 && !up; ++i) {
      up = accepts(nport);
      if (!up) usleep(10000);
    }
    CHECK(up);
    topts.registry = registry;
    topts.registry_ttl_ms = 5000;
    CHECK(weft_rpc_server_create_tcp(tid, &topts, &ts) == WEFT_OK);
    CHECK(weft_rpc_server_register(ts, "counter", counter, counter_handler, NULL) == WEFT_OK);
    CHECK(weft_rpc_server_start(ts) == WEFT_OK);
    CHECK(weft_rpc_client_connect_tcp(counter, "counter", registry, 10000000000, &topts, &tc) == WEFT_OK);
    const int64_t before2 = counter_value;
    CHECK(weft_rpc_client_call(tc, "increment", cargs, csizes, 1, 10000000000, &res, &res_size) == WEFT_OK);
    CHECK(res_size == 8 && counter_value == before2 + 5);
    weft_free(res);
    CHECK(weft_rpc_client_close(tc) == WEFT_OK);
    CHECK(weft_rpc_client_connect_tcp(counter_v2, "counter", registry, 10000000000, &topts, &tc) == WEFT_ECONTRACT);
    CHECK(strstr(weft_last_error_message(), "a name alone is not enough") != NULL);
    CHECK(weft_rpc_server_close(ts) == WEFT_OK);
    topts.struct_size = offsetof(weft_rpc_tcp_options_t, registry);
    CHECK(weft_rpc_server_create_tcp(tid, &topts, &ts) == WEFT_OK);
    CHECK(weft_rpc_server_register(ts, "counter", counter, counter_handler, NULL) == WEFT_OK);
    CHECK(weft_rpc_server_start(ts) == WEFT_OK);
    CHECK(weft_rpc_client_connect_tcp(counter, "counter", registry, 10000000000, &topts, &tc) == WEFT_ENOTFOUND);
    CHECK(weft_rpc_server_close(ts) == WEFT_OK);
    kill(nats, SIGTERM);
    waitpid(nats, NULL, 0);
    char rm[96];
    snprintf(rm, sizeof(rm), "rm -rf %s", ndir);
    CHECK(system(rm) == 0);
  }

  /* Hold mode, loans, streams and cancellation. */
  const char* feed =
      "weft-contract 1\nnamespace demo.feed\nname Feed\nversion 1\nmethod big read i64 -> bytes\n"
      "method count read i64 -> stream i64\nmethod spin write -> i64\nmethod sum read bytes -> i64\n";
  CHECK(weft_rpc_server_register(server, "feed", feed, feed_handler, NULL) == WEFT_OK);
  weft_rpc_client_t* fc = NULL;
  CHECK(weft_rpc_client_connect(feed, "feed", address, 10000000000, &fc) == WEFT_OK);
  int64_t big_n = 1 << 20;
  const void* bargs[1] = {&big_n};
  size_t bsizes[1] = {8};
  weft_rpc_held_t* held = NULL;
  CHECK(weft_rpc_client_call_held(fc, "big", bargs, bsizes, 1, 10000000000, NULL, &held) == WEFT_OK);
  size_t held_size = 0;
  const unsigned char* hb = weft_rpc_held_data(held, &held_size);
  CHECK(held_size == (size_t)big_n && hb != NULL && hb[1000] == (1000 & 0xff) && hb[big_n - 1] == 0xff);
  CHECK(weft_rpc_held_in_shared_memory(held) == 1); /* large: viewed in place */
  weft_rpc_held_free(held);
  int64_t small_n = 100;
  bargs[0] = &small_n;
  CHECK(weft_rpc_client_call_held(fc, "big", bargs, bsizes, 1, 10000000000, NULL, &held) == WEFT_OK);
  CHECK(weft_rpc_held_in_shared_memory(held) == 0); /* small: copied here */
  weft_rpc_held_free(held);
  weft_rpc_held_t* loan = NULL;
  CHECK(weft_rpc_client_loan(fc, 200000, &loan) == WEFT_OK);
  size_t loan_size = 0;
  unsigned char* lb = weft_rpc_held_data(loan, &loan_size);
  CHECK(loan_size == 200000 && weft_rpc_held_in_shared_memory(loan) == 1);
  memset(lb, 2, loan_size);
  const void* largs[1] = {lb};
  size_t lsizes[1] = {loan_size};
  CHECK(weft_rpc_client_call(fc, "sum", largs, lsizes, 1, 10000000000, &res, &res_size) == WEFT_OK);
  int64_t sum = 0;
  if (res_size == 8) memcpy(&sum, res, 8);
  CHECK(sum == 400000);
  weft_free(res);
  weft_rpc_held_free(loan);
  int64_t count_n = 20;
  const void* cntargs[1] = {&count_n};
  weft_rpc_stream_t* stream = NULL;
  CHECK(weft_rpc_client_stream(fc, "count", cntargs, bsizes, 1, 10000000000, &stream) == WEFT_OK);
  int in_order = 1;
  for (int64_t i = 0; i < count_n; ++i) {
    void* chunk = NULL;
    size_t chunk_size = 0;
    int64_t v = -1;
    if (weft_rpc_stream_next(stream, 10000000000, &chunk, &chunk_size) != WEFT_OK || chunk_size != 8) in_order = 0;
    if (chunk != NULL) memcpy(&v, chunk, 8);
    if (v != i) in_order = 0;
    weft_free(chunk);
  }
  CHECK(in_order);
  void* end = (void*)1;
  size_t end_size = 1;
  CHECK(weft_rpc_stream_next(stream, 10000000000, &end, &end_size) == WEFT_OK && end == NULL && end_size == 0);
  weft_rpc_stream_free(stream);
  count_n = 1000000000;
  CHECK(weft_rpc_client_stream(fc, "count", cntargs, bsizes, 1, 10000000000, &stream) == WEFT_OK);
  void* first_chunk = NULL;
  CHECK(weft_rpc_stream_next(stream, 10000000000, &first_chunk, &end_size) == WEFT_OK && first_chunk != NULL);
  weft_free(first_chunk);
  weft_rpc_stream_cancel(stream);
  weft_rpc_stream_free(stream);
  for (int i = 0; i < 10000 && !feed_stream_stopped; ++i) usleep(1000);
  CHECK(feed_stream_stopped == 1); /* the producer stopped */
  weft_rpc_cancel_t* token = NULL;
  CHECK(weft_rpc_cancel_new(&token) == WEFT_OK);
  pthread_t canceller;
  pthread_create(&canceller, NULL, cancel_later, token);
  CHECK(weft_rpc_client_call_held(fc, "spin", NULL, NULL, 0, 60000000000, token, &held) == WEFT_ECANCELED);
  pthread_join(canceller, NULL);
  weft_rpc_cancel_free(token);
  for (int i = 0; i < 10000 && !feed_saw_cancel; ++i) usleep(1000);
  CHECK(feed_saw_cancel == 1);
  CHECK(weft_rpc_client_call(fc, "sum", largs, csizes, 1, 10000000000, &res, &res_size) == WEFT_OK); /* goes on */
  weft_free(res);
  CHECK(weft_rpc_client_close(fc) == WEFT_OK);
  CHECK(weft_rpc_server_close(server) == WEFT_OK);

  /* ---- bus ---- */
  {
    char burl[96];
    snprintf(burl, sizeof(burl), "shm:capi.bus.%d", (int)getpid());
    weft_bus_options_t bopt;
    weft_bus_options_init(&bopt);
    const char* groups[1] = {"g"};
    bopt.shards = 2;
    bopt.shard_bytes = 4096;
    bopt.backpressure = WEFT_OVERFLOW_FAIL;
    bopt.groups = groups;
    bopt.group_count = 1;
    weft_bus_t* bus = NULL;
    CHECK(weft_bus_open(burl, &bopt, &bus) == WEFT_OK && bus != NULL);
    weft_bus_t* same = NULL;
    bopt.shards = 3;
    bopt.must_match = 1;
    CHECK(weft_bus_open(burl, &bopt, &same) == WEFT_EINVAL && same == NULL); /* exists with 2 shards */
    CHECK(weft_bus_open("nowhere:", NULL, &same) == WEFT_EINVAL);
    uint32_t shard = 99;
    uint64_t offset = 99;
    CHECK(weft_bus_ingest(bus, "k", 1, "hello", 5, 0, &shard, &offset) == WEFT_OK && shard < 2 && offset != WEFT_BUS_DROPPED);
    const void* evs[2] = {"a", "bb"};
    size_t esz[2] = {1, 2};
    size_t ingested = 0;
    CHECK(weft_bus_ingest_batch(bus, evs, esz, 2, 0, &ingested) == WEFT_OK && ingested == 2);
    char big[2000];
    memset(big, 'x', sizeof(big));
    CHECK(weft_bus_ingest(bus, NULL, 0, big, sizeof(big), 0, NULL, NULL) == WEFT_ETOOLARGE);
    int refused = 0;
    for (int i = 0; i < 200 && !refused; ++i) refused = weft_bus_ingest(bus, "k", 1, big, 900, 0, NULL, NULL) == WEFT_ERESOURCE;
    CHECK(refused); /* fail: a full shard refuses at once */
    weft_bus_consumer_t* cons = NULL;
    CHECK(weft_bus_subscribe(bus, "g", 1, &cons) == WEFT_OK);
    weft_bus_event_t got[64];
    size_t n = 0, total = 0;
    int saw_hello = 0, saw_bb = 0;
    while (weft_bus_poll(cons, got, 64, 100000000, &n) == WEFT_OK) {
      for (size_t i = 0; i < n; ++i) {
        if (got[i].data_size == 5 && memcmp(got[i].data, "hello", 5) == 0 && got[i].key_size == 1) saw_hello = 1;
        if (got[i].data_size == 2 && memcmp(got[i].data, "bb", 2) == 0 && got[i].key == NULL) saw_bb = 1;
      }
      total += n;
    }
    CHECK(saw_hello && saw_bb && total >= 3);
    int bfd = -1;
    CHECK(weft_bus_consumer_wait_fd(cons, &bfd) == WEFT_OK && bfd >= 0);
    CHECK(weft_bus_poll(cons, got, 64, 0, &n) == WEFT_EWOULDBLOCK && n == 0); /* arms it */
    struct pollfd bp = {bfd, POLLIN, 0};
    CHECK(poll(&bp, 1, 0) == 0);
    CHECK(weft_bus_ingest(bus, NULL, 0, "late", 4, 0, NULL, NULL) == WEFT_OK);
    CHECK(poll(&bp, 1, 5000) == 1); /* rung by the ingest */
    CHECK(weft_bus_poll(cons, got, 64, 0, &n) == WEFT_OK && n == 1);
    CHECK(weft_bus_commit(cons) == WEFT_OK);
    weft_bus_consumer_interrupt(cons);
    CHECK(weft_bus_poll(cons, got, 64, -1, &n) == WEFT_ECLOSED);
    CHECK(weft_bus_consumer_close(cons) == WEFT_OK);
    CHECK(weft_bus_close(bus) == WEFT_OK);
    CHECK(weft_bus_unlink(burl) == WEFT_OK);
    CHECK(weft_bus_unlink(burl) == WEFT_ENOTFOUND);
    CHECK(strlen(weft_last_error_message()) > 0);
    CHECK(weft_bus_close(NULL) == WEFT_OK && strlen(weft_last_error_message()) == 0);
  }

  /* ---- bus on logs ---- */
  {
    char bdir[] = "/tmp/weft-capi-bus-XXXXXX";
    CHECK(mkdtemp(bdir) != NULL);
    char burl[96];
    snprintf(burl, sizeof(burl), "log:%s/bus", bdir);
    weft_bus_options_t bopt;
    weft_bus_options_init(&bopt);
    bopt.shards = 1;
    weft_bus_t* bus = NULL;
    CHECK(weft_bus_open(burl, &bopt, &bus) == WEFT_EINVAL); /* a log: bus is never full: drop_oldest */
    bopt.backpressure = WEFT_OVERFLOW_DROP_OLDEST;
    bopt.log.fsync = WEFT_FSYNC_ALWAYS;
    bopt.log.segment_bytes = 1 << 16;
    CHECK(weft_bus_open(burl, &bopt, &bus) == WEFT_OK && bus != NULL);
    uint64_t offset = 99;
    CHECK(weft_bus_ingest(bus, "k", 1, "durable", 7, 0, NULL, &offset) == WEFT_OK && offset == 0);
    CHECK(weft_bus_close(bus) == WEFT_OK);
    CHECK(weft_bus_open(burl, &bopt, &bus) == WEFT_OK); /* reopened: the event is still there */
    weft_bus_consumer_t* cons = NULL;
    CHECK(weft_bus_subscribe(bus, "g", 1, &cons) == WEFT_OK);
    weft_bus_event_t got[4];
    size_t n = 0;
    CHECK(weft_bus_poll(cons, got, 4, 100000000, &n) == WEFT_OK && n == 1 && got[0].data_size == 7 &&
          memcmp(got[0].data, "durable", 7) == 0 && got[0].key_size == 1 && memcmp(got[0].key, "k", 1) == 0);
    CHECK(weft_bus_consumer_close(cons) == WEFT_OK);
    CHECK(weft_bus_close(bus) == WEFT_OK);
    CHECK(weft_bus_unlink(burl) == WEFT_OK); /* its control segment */
    /* linger: gathered until flushed */
    weft_bus_options_t lopt2;
    weft_bus_options_init(&lopt2);
    lopt2.shards = 1;
    lopt2.linger_ns = 3600000000000LL;
    const char* lg[1] = {"g"};
    lopt2.groups = lg;
    lopt2.group_count = 1;
    weft_bus_t* lb = NULL;
    CHECK(weft_bus_open("memory:", &lopt2, &lb) == WEFT_OK);
    uint64_t loff = 0;
    CHECK(weft_bus_ingest(lb, NULL, 0, "later", 5, 0, NULL, &loff) == WEFT_OK && loff == WEFT_BUS_PENDING);
    weft_bus_consumer_t* lc = NULL;
    CHECK(weft_bus_subscribe(lb, "g", 1, &lc) == WEFT_OK);
    CHECK(weft_bus_poll(lc, got, 4, 0, &n) == WEFT_EWOULDBLOCK);
    CHECK(weft_bus_flush(lb) == WEFT_OK);
    CHECK(weft_bus_poll(lc, got, 4, 0, &n) == WEFT_OK && n == 1);
    CHECK(weft_bus_consumer_close(lc) == WEFT_OK);
    CHECK(weft_bus_close(lb) == WEFT_OK);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", bdir);
    CHECK(system(cmd) == 0);
  }

  /* The remote options: defaults filled in; a server that does not answer is WEFT_EUNAVAILABLE
     within op_timeout_ms; a struct that ends before the remote fields (an older caller) still
     opens; a bad remote url is WEFT_EINVAL. */
  {
    weft_bus_options_t ropt;
    weft_bus_options_init(&ropt);
    CHECK(ropt.op_timeout_ms == 5000 && ropt.claim_idle_ms == 30000 && ropt.dedup_capacity == 65536 &&
          ropt.replicas == 1 && ropt.dedup_window_ms == 120000 && ropt.nonce_path == NULL);
    ropt.op_timeout_ms = 200;
    weft_bus_t* rb = NULL;
    CHECK(weft_bus_open("redis://127.0.0.1:1/steps", &ropt, &rb) == WEFT_EUNAVAILABLE && rb == NULL);
    CHECK(weft_bus_open("nats://127.0.0.1:1/steps", &ropt, &rb) == WEFT_EUNAVAILABLE && rb == NULL);
    CHECK(weft_bus_open("redis://127.0.0.1:6379/bad name", &ropt, &rb) == WEFT_EINVAL);
    ropt.max_len = 10; /* needs drop_oldest */
    CHECK(weft_bus_open("redis://127.0.0.1:1/steps", &ropt, &rb) == WEFT_EINVAL);
    weft_bus_options_t old;
    weft_bus_options_init(&old);
    old.struct_size = (uint32_t)offsetof(weft_bus_options_t, nonce_path);
    CHECK(weft_bus_open("memory:", &old, &rb) == WEFT_OK && rb != NULL);
    CHECK(weft_bus_close(rb) == WEFT_OK);
    old.struct_size = (uint32_t)offsetof(weft_bus_options_t, nonce_path) - 8;
    CHECK(weft_bus_open("memory:", &old, &rb) == WEFT_EINVAL);
  }

  /* ---- graph: a route at the bytes level ---- */
  {
    weft_graph_t* g = NULL;
    CHECK(weft_graph_create(&g) == WEFT_OK);
    weft_route_t* temp = NULL;
    CHECK(weft_graph_declare(g, "sensor/env/temp/meta/read/logical", "f64", &temp) == WEFT_OK);
    weft_route_t* other = NULL;
    CHECK(weft_graph_declare(g, "sensor/env/temp/meta/read/logical", "i64", &other) == WEFT_ESCHEMA);
    CHECK(strstr(weft_last_error_message(), "f64") != NULL);
    CHECK(weft_graph_declare(g, "not a route", "f64", &other) == WEFT_EINVAL);
    double v = 0;
    size_t n = 0;
    CHECK(weft_route_latest(temp, &v, sizeof(v), &n, NULL) == WEFT_ENOTFOUND);
    struct seen_values seen;
    memset(&seen, 0, sizeof(seen));
    uint64_t token = 0;
    CHECK(weft_route_observe(temp, on_value, &seen, &token) == WEFT_OK);
    v = 21.5;
    CHECK(weft_route_publish(temp, &v, sizeof(v), 7, 42) == WEFT_OK);
    CHECK(seen.count == 1 && seen.last == 21.5 && seen.env.seq == 1 && seen.env.producer == 7 &&
          seen.env.correlation == 42 && seen.env.id != 0);
    double back = 0;
    weft_envelope_t env;
    CHECK(weft_route_latest(temp, &back, sizeof(back), &n, &env) == WEFT_OK && back == 21.5 && n == 8 && env.seq == 1);
    char small[2];
    CHECK(weft_route_latest(temp, small, sizeof(small), &n, NULL) == WEFT_ETOOLARGE && n == 8);
    weft_route_t* pose = NULL;
    CHECK(weft_graph_declare(g, "robot/nav/pose/meta/read/logical", "pod pose.v1 size 24 align 8", &pose) == WEFT_OK);
    CHECK(weft_route_publish(pose, &v, sizeof(v), 0, 0) == WEFT_EINVAL); /* 8 bytes for a 24-byte pod */
    CHECK(weft_route_unobserve(temp, token) == WEFT_OK);
    CHECK(weft_route_unobserve(temp, token) == WEFT_ENOTFOUND);
    CHECK(weft_route_publish(temp, &v, sizeof(v), 0, 0) == WEFT_OK);
    CHECK(seen.count == 1); /* no call after unobserve */
    weft_route_free(pose);
    weft_route_free(temp);
    weft_graph_destroy(g);
  }

  printf("capi_test: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
