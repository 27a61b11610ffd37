// sparsedit decode: latents (as a diffusion model samples them) -> images, through the SD VAE.
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/vae.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct DecodeArgs {
  std::string vae, latents, key = "latents", output, save_tensor, device = "cpu";
  int64_t nrow = 4, tile = 0;
  int threads = 0;
  bool quiet = false;
};

void run_decode(const DecodeArgs& a) {
  if (a.output.empty() && a.save_tensor.empty()) fail("decode needs --output PNG and/or --save-tensor FILE");
  set_threads(a.threads);
  Log log(a.quiet);
  const auto device = parse_device(a.device);
  auto sd = read_safetensors(a.latents);
  const auto* z = sd.find(a.key);
  if (!z) {
    std::string names;
    for (const auto& k : sd.keys()) names += (names.empty() ? "" : ", ") + k;
    fail("'", a.latents, "' has no tensor '", a.key, "' (it holds: ", names, "); choose one with --key");
  }
  auto vae = load_vae(a.vae);
  const auto lc = vae->config().latent_channels;
  if (z->dim() != 4 || z->size(1) != lc || z->size(0) == 0)
    fail("tensor '", a.key, "' has shape ", shape_str(z->sizes().vec()), "; the VAE decodes [N, ", lc, ", h, w]");
  if (!torch::isFloatingType(z->scalar_type())) fail("tensor '", a.key, "' must be floating point");
  vae->to(device);
  log.stage("loaded VAE " + a.vae + " and " + std::to_string(z->size(0)) + " latents");
  auto images = vae->decode_latents(z->to(device), a.tile).to(torch::kCPU);
  log.stage("decoded to " + std::to_string(images.size(2)) + "x" + std::to_string(images.size(3)) + " images");
  if (!a.save_tensor.empty()) {
    StateDict out;
    out.set("images", images.contiguous());
    write_safetensors(a.save_tensor, out);
    log.info("wrote " + a.save_tensor);
  }
  if (!a.output.empty()) {
    save_image_grid(images, a.nrow, a.output, {{"parameters", "decode of " + a.latents + " (" + a.key + ") with VAE " + a.vae}});
    log.info("wrote " + a.output);
  }
}

}  // namespace

void register_decode(CLI::App& app) {
  auto a = std::make_shared<DecodeArgs>();
  auto* c = app.add_subcommand("decode", "Decode latents with the SD VAE to a PNG grid and/or a tensor");
  c->add_option("--vae", a->vae, "diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors)")->required();
  c->add_option("--latents", a->latents, "safetensors file holding the latents (scaled, as sampled)")->required();
  c->add_option("--key", a->key, "tensor name in --latents")->capture_default_str();
  c->add_option("-o,--output", a->output, "PNG grid (save_image(nrow, normalize=True, value_range=(-1,1)))");
  c->add_option("--save-tensor", a->save_tensor, "safetensors file for 'images' (N,3,H,W) float, before quantization");
  c->add_option("--nrow", a->nrow, "images per row of the grid")->capture_default_str();
  c->add_option("--tile", a->tile, "decode in overlapping tiles of this many latent pixels (0 = whole; bounds memory, not exact)")
      ->capture_default_str();
  c->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  c->callback([a] { run_decode(*a); });
}

}  // namespace sdit::cli
