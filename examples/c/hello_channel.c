/* A producer and a consumer process over a Weft channel, through the C ABI.
   Build: cc hello_channel.c -lweft.  Run: ./hello_channel */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft/weft.h"

int main(void) {
  char name[64];
  snprintf(name, sizeof(name), "example.c.%d", (int)getpid());
  weft_channel_options_t opt;
  weft_channel_options_init(&opt);
  opt.capacity = 1 << 20;
  weft_channel_t* tx;
  if (weft_channel_create(name, &opt, &tx) != WEFT_OK) {
    fprintf(stderr, "create: %s\n", weft_last_error_message());
    return 1;
  }
  pid_t pid = fork();
  if (pid == 0) { /* consumer */
    weft_channel_t* rx;
    if (weft_channel_open(name, WEFT_ROLE_CONSUMER, &rx) != WEFT_OK) _exit(1);
    for (int i = 0; i < 3; ++i) {
      const void* data;
      size_t n;
      if (weft_channel_read(rx, 5000000000LL, &data, &n) != WEFT_OK) _exit(2);
      printf("consumer got %.*s\n", (int)n, (const char*)data); /* read in place */
      weft_channel_release(rx, 1);
    }
    weft_channel_close(rx);
    _exit(0);
  }
  for (int i = 0; i < 3; ++i) {
    void* buf;
    if (weft_channel_reserve(tx, 32, -1, &buf) != WEFT_OK) return 3;
    int n = snprintf((char*)buf, 32, "message %d", i); /* written in place */
    weft_channel_commit(tx, (size_t)n);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  weft_channel_close(tx);
  weft_channel_unlink(name);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
}
