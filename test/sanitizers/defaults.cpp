// The sanitizers' settings, compiled into every executable of a sanitizer build (REPL_SANITIZE,
// REPL_TSAN): the same whether a test, CTest or a developer starts the binary, and no environment
// to forget. $ASAN_OPTIONS, $UBSAN_OPTIONS, $TSAN_OPTIONS still override them. Suppressions of code
// that is not ours are in this directory (REPL_SANITIZER_DIR), each with its reason.
#if defined(__SANITIZE_ADDRESS__)
#define REPL_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define REPL_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPL_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define REPL_TSAN 1
#endif
#endif

extern "C" {

#if defined(REPL_ASAN)
const char* __asan_default_options() { return "detect_leaks=1:detect_stack_use_after_return=1"; }
const char* __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1:suppressions=" REPL_SANITIZER_DIR "/ubsan.supp";
}
const char* __lsan_default_options() { return "suppressions=" REPL_SANITIZER_DIR "/lsan.supp"; }
#endif

#if defined(REPL_TSAN)
const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1:suppressions=" REPL_SANITIZER_DIR "/tsan.supp";
}
#endif
}
