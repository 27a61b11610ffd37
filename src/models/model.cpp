#include "models/model.h"

#include "io/checkpoint.h"
#include "models/load.h"
#include "util/error.h"

namespace sdit {

Model Model::build(const ModelSpec& spec) {
  const Family& f = family(spec.family);
  Model m;
  m.spec_ = spec;
  m.latent_ = f.latent(spec);
  m.net_ = std::shared_ptr<Backbone>(f.build(spec));
  m.module().eval();
  return m;
}

Model Model::from_state_dict(const StateDict& sd_in, const LoadOptions& opt) {
  const StateDict sd = native_state_dict(sd_in);
  Model m = build(detect_spec(sd, opt));
  load_state_dict(m.module(), sd, /*strict=*/true);
  m.metadata_ = sd.metadata;
  return m;
}

Model Model::load(const std::string& path, const LoadOptions& opt) {
  auto sd = load_checkpoint(path);
  try {
    return from_state_dict(sd, opt);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

std::string Model::describe() const { return describe_line(spec_); }

Backbone& Model::backbone() const {
  if (!net_) fail("model is not initialised");
  return *net_;
}

torch::nn::Module& Model::module() { return backbone().module(); }
const torch::nn::Module& Model::module() const { return backbone().module(); }

torch::Tensor Model::forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c, const Grid& sparse) {
  return backbone().forward(x, t, c, sparse);
}

FlopsReport Model::flops(const Grid& dense, const Grid& sparse) const {
  return family(spec_.family).flops(spec_, dense, sparse.empty() ? dense : sparse);
}

StateDict Model::state_dict() const {
  auto sd = module_state_dict(module());
  sd.metadata = metadata_;
  sd.metadata["config"] = spec_.config.dump();
  sd.metadata["family"] = name();
  if (spec_.layout) sd.metadata["layout"] = spec_.layout->str();
  else sd.metadata.erase("layout");
  return sd;
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : module().parameters()) n += p.numel();
  for (const auto& b : module().buffers()) n += b.numel();
  return n;
}

void Model::to(torch::Device device, torch::Dtype dtype) { module().to(device, dtype); }
void Model::train(bool on) { module().train(on); }

}  // namespace sdit
