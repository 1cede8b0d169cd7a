// libFuzzer target: the SubmitJob request path behind gRPC. Any bytes as a serialized
// matbert.v1.SubmitJobRequest, translated as JobService does (FromProto) and admitted as the
// coordinator admits it (Admit: spec, overrides, paths confined to the daemon's roots, sizes).
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>

#include "server/core/admission.h"
#include "server/proto_convert.h"

// Quiet: protobuf logs every string field that is not UTF-8, which random bytes often are.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  matbert::v1::SubmitJobRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  matbert::AdmissionLimits limits;
  limits.spec_root = MATBERT_SOURCE_DIR "/configs";
  limits.data_root = "/nonexistent/matbert-fuzz/data/";
  limits.num_devices = 8;
  (void)matbert::Admit(matbert::FromProto(request, "fuzz"), "jfuzz", limits);
  return 0;
}
