/* A TFLite external delegate that takes no nodes: loads through the same path as libedgetpu.so.1
   or a GPU delegate library, so the runtime's delegate loading, options and locking run for real.
   Options: fail=1 refuses to create the delegate; static=1 declines dynamic-sized tensors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct TfLiteDelegate {
  void* data_;
  int (*Prepare)(void* context, struct TfLiteDelegate* delegate);
  int (*CopyFromBufferHandle)(void* context, struct TfLiteDelegate* delegate, int handle, void* tensor);
  int (*CopyToBufferHandle)(void* context, struct TfLiteDelegate* delegate, int handle, void* tensor);
  void (*FreeBufferHandle)(void* context, struct TfLiteDelegate* delegate, int* handle);
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;

static int prepare(void* context, TfLiteDelegate* delegate) { return 0; }

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count, void (*report_error)(const char*)) {
  int64_t flags = 1; /* kTfLiteDelegateFlagsAllowDynamicTensors */
  for (size_t i = 0; i < count; i++) {
    if (strcmp(keys[i], "fail") == 0) {
      report_error("refused by option fail");
      return NULL;
    }
    if (strcmp(keys[i], "static") == 0) flags = 0;
  }
  TfLiteDelegate* delegate = calloc(1, sizeof(TfLiteDelegate));
  delegate->Prepare = prepare;
  delegate->flags = flags;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }
