#pragma once
// The restricted unpickler's allow-list (io/pickle.cpp): the only globals a checkpoint's pickle may
// name. Anything else is refused by name; nothing from a file is ever called.
#include <torch/torch.h>

namespace sdit {

enum class PickleGlobal { OrderedDict, RebuildTensor, RebuildParameter, Storage, Namespace };

struct AllowedGlobal {
  const char* name;
  PickleGlobal kind;
  torch::ScalarType dtype;  // storages: the element type
};

inline constexpr AllowedGlobal kAllowedGlobals[] = {
    {"collections.OrderedDict", PickleGlobal::OrderedDict, torch::kFloat},
    {"torch._utils._rebuild_tensor_v2", PickleGlobal::RebuildTensor, torch::kFloat},
    {"torch._utils._rebuild_tensor", PickleGlobal::RebuildTensor, torch::kFloat},  // PyTorch < 0.4 files
    {"torch._utils._rebuild_parameter", PickleGlobal::RebuildParameter, torch::kFloat},
    {"argparse.Namespace", PickleGlobal::Namespace, torch::kFloat},
    {"torch.FloatStorage", PickleGlobal::Storage, torch::kFloat},
    {"torch.HalfStorage", PickleGlobal::Storage, torch::kHalf},
    {"torch.BFloat16Storage", PickleGlobal::Storage, torch::kBFloat16},
    {"torch.DoubleStorage", PickleGlobal::Storage, torch::kDouble},
    {"torch.LongStorage", PickleGlobal::Storage, torch::kLong},
    {"torch.IntStorage", PickleGlobal::Storage, torch::kInt},
    {"torch.ShortStorage", PickleGlobal::Storage, torch::kShort},
    {"torch.CharStorage", PickleGlobal::Storage, torch::kChar},
    {"torch.ByteStorage", PickleGlobal::Storage, torch::kByte},
    {"torch.BoolStorage", PickleGlobal::Storage, torch::kBool},
};

}  // namespace sdit
