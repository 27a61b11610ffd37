#include "models/model.h"

#include <sstream>

#include "io/checkpoint.h"
#include "models/load.h"
#include "util/error.h"

namespace sdit {

Model Model::build(const DetectedModel& spec) {
  Model m;
  m.spec_ = spec;
  if (m.sparse())
    m.sparse_ = SparseDiT(spec.config, spec.layout);
  else
    m.dense_ = DiT(spec.config);
  m.module().eval();
  return m;
}

Model Model::from_state_dict(const StateDict& sd_in, std::optional<int64_t> num_heads) {
  const StateDict sd = without_training_state(sd_in);
  auto spec = detect_from_weights(sd, num_heads);
  if (!spec.heads_known)
    fail("cannot tell the number of attention heads for hidden size ", spec.config.hidden_size,
         " (no config metadata); pass --num-heads");
  Model m = build(spec);
  load_state_dict(m.module(), sd, /*strict=*/true);
  m.metadata_ = sd.metadata;
  return m;
}

Model Model::load(const std::string& path, std::optional<int64_t> num_heads) {
  auto sd = load_checkpoint(path);
  try {
    return from_state_dict(sd, num_heads);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

std::string Model::describe() const {
  const auto& c = spec_.config;
  std::ostringstream os;
  os << (sparse() ? "SparseDiT" : "DiT") << " (hidden " << c.hidden_size << ", depth " << c.depth << ", heads "
     << c.num_heads << ", patch " << c.patch_size << ", input " << c.in_channels << "x" << c.input_size << "x"
     << c.input_size << ", " << c.tokens() << " tokens, " << c.num_classes << " classes"
     << (c.learn_sigma ? ", learned sigma" : "");
  if (sparse()) os << ", layout " << spec_.layout.str();
  os << ")";
  return os.str();
}

torch::nn::Module& Model::module() { return *module_ptr(); }
const torch::nn::Module& Model::module() const { return *module_ptr(); }

std::shared_ptr<torch::nn::Module> Model::module_ptr() const {
  if (sparse()) return sparse_.ptr();
  if (!dense_) fail("model is not initialised");
  return dense_.ptr();
}

torch::Tensor Model::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y, int64_t side) {
  if (sparse()) return sparse_->forward(x, t, y, side <= 0 ? spec_.config.grid() : side);
  return dense_->forward(x, t, y);
}

StateDict Model::state_dict() const {
  auto sd = module_state_dict(module());
  sd.metadata = metadata_;
  sd.metadata["config"] = spec_.config.to_json();
  sd.metadata["family"] = sparse() ? "SparseDiT" : "DiT";
  if (sparse()) sd.metadata["layout"] = spec_.layout.str();
  else sd.metadata.erase("layout");
  return sd;
}

void Model::to(torch::Device device, torch::Dtype dtype) { module().to(device, dtype); }
void Model::train(bool on) { module().train(on); }

}  // namespace sdit
