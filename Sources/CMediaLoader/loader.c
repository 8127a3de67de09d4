/* FFmpeg and libsndfile, opened when first used instead of linked.
 *
 * Linked, the two bring about 150 shared libraries with them (codecs, TLS, SVG, fonts) that
 * the dynamic loader maps and relocates before main: about 24 MiB of resident memory in every
 * glassbox process, including those that never touch a media file (`glassbox bench` of a
 * model, `check`, `info`). So GlassboxMedia's calls go to the stubs below — one per function
 * it uses, hidden (never exported, so the libraries' own calls between themselves do not
 * reach them) — and each stub jumps through a table that the first call to any of them fills:
 * every library opened with dlopen, every function looked up with dlsym. A missing library is
 * a message naming its Debian package and tools/setup, then exit status 69.
 *
 * A stub has no C signature: it jumps with the caller's registers and stack untouched, and the
 * first call saves the argument registers around the loading (x86-64 System V: the stubs
 * are written for it, and the build stops elsewhere). The list is every FFmpeg/libsndfile symbol the
 * glassbox binary imported when it was linked (`nm -D --undefined-only`); a call to a
 * function missing here fails at link time, not at run time.
 */
#include "media_loader.h"

#if defined(__x86_64__) && defined(__linux__)

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#define STRING(x) #x
#define XSTRING(x) STRING(x)

enum { AVFORMAT, AVCODEC, AVUTIL, SWSCALE, SWRESAMPLE, SNDFILE, LIBRARIES };

/* SONAMEs of the versions the headers describe, and the Debian packages with the headers. */
static const char *const sonames[LIBRARIES] = {
  "libavformat.so." XSTRING(LIBAVFORMAT_VERSION_MAJOR), "libavcodec.so." XSTRING(LIBAVCODEC_VERSION_MAJOR),
  "libavutil.so." XSTRING(LIBAVUTIL_VERSION_MAJOR), "libswscale.so." XSTRING(LIBSWSCALE_VERSION_MAJOR),
  "libswresample.so." XSTRING(LIBSWRESAMPLE_VERSION_MAJOR), "libsndfile.so.1",
};
static const char *const packages[LIBRARIES] = {
  "libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev", "libswresample-dev", "libsndfile1-dev",
};

#define SYMBOLS \
  X( 0, AVFORMAT, av_find_best_stream) \
  X( 1, AVFORMAT, av_interleaved_write_frame) \
  X( 2, AVFORMAT, av_read_frame) \
  X( 3, AVFORMAT, av_seek_frame) \
  X( 4, AVFORMAT, av_write_trailer) \
  X( 5, AVFORMAT, avformat_alloc_output_context2) \
  X( 6, AVFORMAT, avformat_close_input) \
  X( 7, AVFORMAT, avformat_find_stream_info) \
  X( 8, AVFORMAT, avformat_free_context) \
  X( 9, AVFORMAT, avformat_index_get_entries_count) \
  X(10, AVFORMAT, avformat_index_get_entry) \
  X(11, AVFORMAT, avformat_new_stream) \
  X(12, AVFORMAT, avformat_open_input) \
  X(13, AVFORMAT, avformat_version) \
  X(14, AVFORMAT, avformat_write_header) \
  X(15, AVFORMAT, avio_closep) \
  X(16, AVFORMAT, avio_open) \
  X(17, AVCODEC, av_packet_alloc) \
  X(18, AVCODEC, av_packet_free) \
  X(19, AVCODEC, av_packet_rescale_ts) \
  X(20, AVCODEC, av_packet_unref) \
  X(21, AVCODEC, avcodec_alloc_context3) \
  X(22, AVCODEC, avcodec_find_decoder) \
  X(23, AVCODEC, avcodec_find_encoder_by_name) \
  X(24, AVCODEC, avcodec_flush_buffers) \
  X(25, AVCODEC, avcodec_free_context) \
  X(26, AVCODEC, avcodec_get_name) \
  X(27, AVCODEC, avcodec_open2) \
  X(28, AVCODEC, avcodec_parameters_from_context) \
  X(29, AVCODEC, avcodec_parameters_to_context) \
  X(30, AVCODEC, avcodec_receive_frame) \
  X(31, AVCODEC, avcodec_receive_packet) \
  X(32, AVCODEC, avcodec_send_frame) \
  X(33, AVCODEC, avcodec_send_packet) \
  X(34, AVCODEC, avcodec_version) \
  X(35, AVUTIL, av_channel_layout_default) \
  X(36, AVUTIL, av_channel_layout_uninit) \
  X(37, AVUTIL, av_frame_alloc) \
  X(38, AVUTIL, av_frame_free) \
  X(39, AVUTIL, av_frame_get_buffer) \
  X(40, AVUTIL, av_frame_make_writable) \
  X(41, AVUTIL, av_frame_unref) \
  X(42, AVUTIL, av_free) \
  X(43, AVUTIL, av_get_pix_fmt_name) \
  X(44, AVUTIL, av_hash_alloc) \
  X(45, AVUTIL, av_hash_final_hex) \
  X(46, AVUTIL, av_hash_freep) \
  X(47, AVUTIL, av_hash_init) \
  X(48, AVUTIL, av_hash_update) \
  X(49, AVUTIL, av_log_set_level) \
  X(50, AVUTIL, av_malloc) \
  X(51, AVUTIL, av_opt_set) \
  X(52, AVUTIL, av_strerror) \
  X(53, AVUTIL, av_tx_init) \
  X(54, AVUTIL, av_tx_uninit) \
  X(55, AVUTIL, avutil_version) \
  X(56, SWSCALE, sws_freeContext) \
  X(57, SWSCALE, sws_getCachedContext) \
  X(58, SWSCALE, sws_getContext) \
  X(59, SWSCALE, sws_scale) \
  X(60, SWSCALE, swscale_version) \
  X(61, SWRESAMPLE, swr_alloc_set_opts2) \
  X(62, SWRESAMPLE, swr_convert) \
  X(63, SWRESAMPLE, swr_free) \
  X(64, SWRESAMPLE, swr_init) \
  X(65, SWRESAMPLE, swresample_version) \
  X(66, SNDFILE, sf_close) \
  X(67, SNDFILE, sf_command) \
  X(68, SNDFILE, sf_error) \
  X(69, SNDFILE, sf_error_number) \
  X(70, SNDFILE, sf_open) \
  X(71, SNDFILE, sf_readf_float) \
  X(72, SNDFILE, sf_strerror) \
  X(73, SNDFILE, sf_version_string)

#define X(index, library, name) +1
enum { SYMBOL_COUNT = 0 SYMBOLS };
#undef X

/* The stubs jump through this; filled once, before any stub jumps. */
__attribute__((visibility("hidden"))) void *glassbox_media_table[SYMBOL_COUNT];

#define X(index, library, name) {library, #name},
static const struct { int library; const char *name; } symbols[SYMBOL_COUNT] = { SYMBOLS };
#undef X

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[512];

static void load(void) {
  void *handles[LIBRARIES];
  for (int l = 0; l < LIBRARIES; l++) {
    handles[l] = dlopen(sonames[l], RTLD_NOW | RTLD_LOCAL);
    if (!handles[l]) {
      const char *why = dlerror();
      snprintf(failure, sizeof failure, "cannot load %s (%s); install %s (tools/setup)", sonames[l],
               why ? why : "not found", packages[l]);
      return;
    }
  }
  void *found[SYMBOL_COUNT];
  for (int i = 0; i < SYMBOL_COUNT; i++) {
    found[i] = dlsym(handles[symbols[i].library], symbols[i].name);
    if (!found[i]) {
      snprintf(failure, sizeof failure, "%s has no %s; install %s (tools/setup)", sonames[symbols[i].library],
               symbols[i].name, packages[symbols[i].library]);
      return;
    }
  }
  memcpy(glassbox_media_table, found, sizeof found);
}

const char *glassbox_media_load(void) {
  pthread_once(&once, load);
  return failure[0] ? failure : NULL;
}

/* Called by a stub whose table entry is still empty (the first media call of the process). */
__attribute__((visibility("hidden"))) void *glassbox_media_resolve(int index) {
  const char *why = glassbox_media_load();
  if (why) {
    fprintf(stderr, "glassbox: %s\n", why);
    exit(69);
  }
  return glassbox_media_table[index];
}

/* The slow path: argument registers (and %al, the vector count of variadic calls) saved
 * around glassbox_media_resolve, then on to the function with the stack as the caller left it.
 * On entry %rsp ≡ 8 (mod 16); seven pushes and 128 bytes leave it aligned for the call. */
__asm__(
  ".text\n"
  ".p2align 4\n"
  ".type glassbox_media_slow, @function\n"
  "glassbox_media_slow:\n"
  "  pushq %rdi\n  pushq %rsi\n  pushq %rdx\n  pushq %rcx\n  pushq %r8\n  pushq %r9\n  pushq %rax\n"
  "  subq $128, %rsp\n"
  "  movdqu %xmm0, 0(%rsp)\n  movdqu %xmm1, 16(%rsp)\n  movdqu %xmm2, 32(%rsp)\n  movdqu %xmm3, 48(%rsp)\n"
  "  movdqu %xmm4, 64(%rsp)\n  movdqu %xmm5, 80(%rsp)\n  movdqu %xmm6, 96(%rsp)\n  movdqu %xmm7, 112(%rsp)\n"
  "  movl %r11d, %edi\n"
  "  call glassbox_media_resolve\n"
  "  movq %rax, %r11\n"
  "  movdqu 0(%rsp), %xmm0\n  movdqu 16(%rsp), %xmm1\n  movdqu 32(%rsp), %xmm2\n  movdqu 48(%rsp), %xmm3\n"
  "  movdqu 64(%rsp), %xmm4\n  movdqu 80(%rsp), %xmm5\n  movdqu 96(%rsp), %xmm6\n  movdqu 112(%rsp), %xmm7\n"
  "  addq $128, %rsp\n"
  "  popq %rax\n  popq %r9\n  popq %r8\n  popq %rcx\n  popq %rdx\n  popq %rsi\n  popq %rdi\n"
  "  jmp *%r11\n"
  ".size glassbox_media_slow, .-glassbox_media_slow\n");

#define X(index, library, name)                                                    \
  __asm__(".text\n"                                                                \
          ".globl " #name "\n"                                                     \
          ".hidden " #name "\n"                                                    \
          ".type " #name ", @function\n" #name ":\n"                               \
          "  movq glassbox_media_table+" #index "*8(%rip), %r11\n"                 \
          "  testq %r11, %r11\n"                                                   \
          "  jz 1f\n"                                                              \
          "  jmp *%r11\n"                                                          \
          "1:\n"                                                                   \
          "  movl $" #index ", %r11d\n"                                            \
          "  jmp glassbox_media_slow\n"                                            \
          ".size " #name ", .-" #name "\n");
SYMBOLS
#undef X

#else
#error "the media loader's stubs are x86-64 Linux code"
#endif
