// The evaluation maths and file formats: the symmetric matrix square root and Fréchet distance
// against independent references, Kynkäänniemi precision/recall against a brute-force loop, and
// .npy/.npz reading (including hostile headers) and writing. Classifier and `sparsedit eval` end to
// end are in test_eval_cli.cpp.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "eval/eval_inputs.h"
#include "eval/fid.h"
#include "data/npz.h"
#include "io/file_util.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// A random orthogonal matrix (Q of a QR factorization): eigenbases for matrices with known roots.
torch::Tensor random_orthogonal(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return std::get<0>(torch::linalg_qr(torch::randn({n, n}, kF64)));
}

torch::Tensor with_eigenvalues(const torch::Tensor& q, const torch::Tensor& d) { return (q * d.unsqueeze(0)).mm(q.t()); }

// Denman–Beavers iteration Y ← (Y + Z⁻¹)/2, Z ← (Z + Y⁻¹)/2 from Y = M, Z = I: converges to the
// principal square root of any M whose eigenvalues are real and positive (Σ1Σ2 for SPD Σ1, Σ2) and
// uses no eigendecomposition, so it is independent of the implementation under test.
torch::Tensor sqrtm_denman_beavers(const torch::Tensor& m) {
  auto y = m.clone(), z = torch::eye(m.size(0), kF64);
  for (int i = 0; i < 100; ++i) {
    auto yn = 0.5 * (y + torch::inverse(z));
    z = 0.5 * (z + torch::inverse(y));
    const double change = (yn - y).norm().item<double>() / yn.norm().item<double>();
    y = yn;
    if (change < 1e-15) break;
  }
  return y;
}

torch::Tensor random_spd(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto b = torch::randn({n, n + 3}, kF64);
  return b.mm(b.t()) / static_cast<double>(n) + 0.05 * torch::eye(n, kF64);
}

FeatureStats stats_of(const torch::Tensor& mu, const torch::Tensor& sigma) {
  FeatureStats s;
  s.mu = mu;
  s.sigma = sigma;
  return s;
}

}  // namespace

TEST(Sqrtm, MatchesAConstructedRoot) {
  // Reference: S = Q diag(√d) Qᵀ is the PSD root of A = Q diag(d) Qᵀ by construction; some d are 0.
  auto q = random_orthogonal(24, 1);
  auto d = torch::linspace(0.01, 9.0, 24, kF64);
  d.index_put_({torch::indexing::Slice(0, 3)}, 0.0);
  auto s = with_eigenvalues(q, d.sqrt());
  EXPECT_LT(rel_l2(sqrtm_psd(with_eigenvalues(q, d)), s), 1e-6);
  // And A = B Bᵀ for a random B: the root squared gives A back.
  torch::manual_seed(2);
  auto b = torch::randn({16, 16}, kF64);
  auto a = b.mm(b.t());
  auto r = sqrtm_psd(a);
  EXPECT_LT(rel_l2(r.mm(r), a), 1e-10);
  EXPECT_LT(rel_l2(r, r.t()), 1e-14);
}

TEST(Sqrtm, TraceOfCommutingProductHasClosedForm) {
  // Reference: Σ1 = Q diag(a) Qᵀ and Σ2 = Q diag(b) Qᵀ commute, so Tr √(Σ1Σ2) = Σ √(a_i b_i).
  auto q = random_orthogonal(32, 3);
  auto a = torch::linspace(0.1, 5.0, 32, kF64), b = torch::linspace(3.0, 0.2, 32, kF64);
  const double expect = (a * b).sqrt().sum().item<double>();
  const double got = trace_sqrt_product(with_eigenvalues(q, a), with_eigenvalues(q, b));
  EXPECT_NEAR(got / expect, 1.0, 1e-6);
  // Singular factors (rank-deficient covariances, as from fewer images than features): zeros drop out.
  a.index_put_({torch::indexing::Slice(20, 32)}, 0.0);
  const double expect0 = (a * b).sqrt().sum().item<double>();
  EXPECT_NEAR(trace_sqrt_product(with_eigenvalues(q, a), with_eigenvalues(q, b)) / expect0, 1.0, 1e-6);
}

TEST(Sqrtm, TraceMatchesDenmanBeaversOnRandomSpdPairs) {
  for (uint64_t seed = 10; seed < 14; ++seed) {
    const int64_t n = seed % 2 ? 12 : 40;
    auto s1 = random_spd(n, seed), s2 = random_spd(n, seed + 100);
    const double expect = sqrtm_denman_beavers(s1.mm(s2)).trace().item<double>();
    EXPECT_NEAR(trace_sqrt_product(s1, s2) / expect, 1.0, 1e-6) << "seed " << seed;
  }
}

TEST(Frechet, DiagonalGaussiansHaveClosedForm) {
  // Reference: for diagonal Σ the distance is ‖μ1−μ2‖² + Σ (√a_i − √b_i)².
  torch::manual_seed(4);
  auto mu1 = torch::randn({10}, kF64), mu2 = torch::randn({10}, kF64);
  auto a = torch::rand({10}, kF64) + 0.1, b = torch::rand({10}, kF64) + 0.1;
  const double expect = (mu1 - mu2).pow(2).sum().item<double>() + (a.sqrt() - b.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(frechet_distance(stats_of(mu1, a.diag()), stats_of(mu2, b.diag())) / expect, 1.0, 1e-9);
}

TEST(Frechet, RandomCovariancesMatchDenmanBeavers) {
  torch::manual_seed(5);
  auto s1 = random_spd(20, 21), s2 = random_spd(20, 22);
  auto mu1 = torch::randn({20}, kF64), mu2 = torch::randn({20}, kF64);
  const double expect = (mu1 - mu2).pow(2).sum().item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
                        2 * sqrtm_denman_beavers(s1.mm(s2)).trace().item<double>();
  EXPECT_NEAR(frechet_distance(stats_of(mu1, s1), stats_of(mu2, s2)) / expect, 1.0, 1e-6);
}

TEST(Frechet, StatisticsAreNpCovAndASetAgainstItselfIsZero) {
  torch::manual_seed(6);
  auto f = torch::randn({7, 3}, kF64).to(torch::kFloat32);  // float32 features, as the extractor gives
  auto s = feature_stats(f);
  // np.cov(rowvar=False) written out: Σ_jk = Σ_i (x_ij − μ_j)(x_ik − μ_k) / (N − 1).
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 3; ++k) {
      double acc = 0;
      for (int i = 0; i < 7; ++i)
        acc += (f[i][j].item<double>() - s.mu[j].item<double>()) * (f[i][k].item<double>() - s.mu[k].item<double>());
      EXPECT_NEAR(s.sigma[j][k].item<double>(), acc / 6, 1e-12);
    }
  auto feats = torch::randn({300, 16}) * 3 + 1;
  auto st = feature_stats(feats);
  EXPECT_NEAR(frechet_distance(st, st), 0.0, 1e-9);
  // Fewer images than features: Σ is singular, the distance stays finite and ~0 (rounding noise of
  // the zero eigenvalues enters through a square root, as with scipy's sqrtm).
  auto few = feature_stats(torch::randn({10, 64}));
  const double self = frechet_distance(few, few);
  EXPECT_TRUE(std::isfinite(self));
  EXPECT_LT(std::abs(self), 1e-5 * few.sigma.trace().item<double>());
}

TEST(Frechet, RejectsMismatchedOrBrokenStatistics) {
  auto a = feature_stats(torch::randn({5, 4})), b = feature_stats(torch::randn({5, 3}));
  EXPECT_THROW(frechet_distance(a, b), Error);
  auto bad = a;
  bad.sigma = bad.sigma.clone();
  bad.sigma[0][0] = NAN;
  EXPECT_THROW(frechet_distance(a, bad), Error);
  EXPECT_THROW(feature_stats(torch::randn({1, 4})), Error);
  EXPECT_THROW(feature_stats(torch::randn({4})), Error);
}

TEST(PrecisionRecall, HandComputedOneDimensionalCase) {
  // k=1: every reference radius is 1 (neighbours 1 apart). Samples 0.5 and 2.2 fall in a reference
  // ball, 10 and 20 do not: precision 1/2. Sample radii: 0.5 and 2.2 are 1.7 apart (r = 2.89), 10
  // has 7.8² = 60.84, 20 has 100: every reference lies in some sample ball, recall 1.
  auto ref = torch::tensor({0.0, 1.0, 2.0, 3.0, 4.0}).unsqueeze(1);
  auto smp = torch::tensor({0.5, 10.0, 2.2, 20.0}).unsqueeze(1);
  auto pr = precision_recall(ref, smp, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 0.5);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
  auto same = precision_recall(ref, ref, 2);
  EXPECT_DOUBLE_EQ(same.precision, 1.0);
  EXPECT_DOUBLE_EQ(same.recall, 1.0);
  EXPECT_THROW(precision_recall(ref, smp, 4), Error);  // 4 samples cannot have 4 neighbours
}

TEST(PrecisionRecall, MatchesBruteForceDefinition) {
  torch::manual_seed(7);
  auto ref = torch::randn({60, 5}), smp = torch::randn({50, 5}) * 1.3 + 0.4;
  const int k = 3;
  // Literal definition in double: sort each point's distances to its own set, skip itself.
  auto dist2 = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kDouble).unsqueeze(1) - b.to(torch::kDouble).unsqueeze(0)).pow(2).sum(2);
  };
  auto radii = [&](const torch::Tensor& x) { return std::get<0>(dist2(x, x).sort(1)).select(1, k); };
  auto covered = [&](const torch::Tensor& x, const torch::Tensor& centers) {
    return dist2(x, centers).le(radii(centers).unsqueeze(0)).any(1).to(torch::kDouble).mean().item<double>();
  };
  auto pr = precision_recall(ref, smp, k);
  EXPECT_NEAR(pr.precision, covered(smp, ref), 1e-12);
  EXPECT_NEAR(pr.recall, covered(ref, smp), 1e-12);
  EXPECT_GT(pr.precision, 0.0);
  EXPECT_LT(pr.recall, 1.0);
}

namespace {

// numpy.save's bytes for a header text (format 1.0) followed by raw data.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  std::string h = std::string("\x93NUMPY", 6) + char(major) + '\0';
  const size_t n = dict.size();
  h += char(n & 0xFF);
  h += char((n >> 8) & 0xFF);
  if (major >= 2) h += std::string{char((n >> 16) & 0xFF), char((n >> 24) & 0xFF)};
  return h + dict + data;
}

torch::Tensor parse(const std::string& bytes) {
  return parse_npy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.npy");
}

std::string le32(uint32_t v) { return {char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; }
std::string le16(uint16_t v) { return {char(v), char(v >> 8)}; }

// A one-entry zip whose entry is raw-deflated, as np.savez_compressed writes it (ZipWriter only
// stores). claimed_size lets a test lie about the uncompressed size.
std::string deflated_zip(const std::string& name, const std::string& payload, int64_t claimed_size = -1) {
  std::string comp(compressBound(payload.size()) + 64, '\0');
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data()));
  zs.avail_in = payload.size();
  zs.next_out = reinterpret_cast<Bytef*>(comp.data());
  zs.avail_out = comp.size();
  deflate(&zs, Z_FINISH);
  comp.resize(zs.total_out);
  deflateEnd(&zs);
  const uint32_t crc = ::crc32(0, reinterpret_cast<const Bytef*>(payload.data()), payload.size());
  const uint32_t size = claimed_size < 0 ? payload.size() : static_cast<uint32_t>(claimed_size);
  std::string common = le16(20) + le16(0) + le16(8) + le16(0) + le16(0x21) + le32(crc) + le32(comp.size()) + le32(size) +
                       le16(name.size()) + le16(0);
  std::string local = le32(0x04034b50) + common + name + comp;
  std::string central = le32(0x02014b50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(0) + name;
  std::string end = le32(0x06054b50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(central.size()) +
                    le32(local.size()) + le16(0);
  return local + central + end;
}

std::string write_file(const std::string& name, const std::string& bytes) {
  const auto p = temp_path(name);
  std::ofstream(p, std::ios::binary).write(bytes.data(), bytes.size());
  return p;
}

}  // namespace

TEST(Npy, ReadsWhatNumpyWrites) {
  // np.save(np.arange(3.0)): the header numpy writes, padded so the data starts at byte 64·k.
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  const double v[3] = {0, 1, 2};
  std::string padded = dict + std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  const std::string bytes = npy_bytes(padded, std::string(reinterpret_cast<const char*>(v), sizeof v));
  EXPECT_EQ(bytes.substr(0, 128), npy_header(torch::kDouble, {3}));
  auto t = parse(bytes);
  EXPECT_EQ(t.scalar_type(), torch::kDouble);
  EXPECT_TRUE(t.equal(torch::tensor({0.0, 1.0, 2.0}, kF64)));
  // Format 2.0, a scalar, and Fortran order (data column-major: logical [[0, 2, 4], [1, 3, 5]]).
  const int32_t s = 7;
  auto sc = parse(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (), }\n", std::string((const char*)&s, 4), 2));
  EXPECT_EQ(sc.dim(), 0);
  EXPECT_EQ(sc.item<int32_t>(), 7);
  const uint8_t f[6] = {0, 1, 2, 3, 4, 5};
  auto ft = parse(npy_bytes("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }\n", std::string((const char*)f, 6)));
  EXPECT_TRUE(ft.equal(torch::tensor({0, 2, 4, 1, 3, 5}, torch::kByte).view({2, 3})));
}

TEST(Npy, EncodeParseRoundTripsEveryDtype) {
  for (auto dt : {torch::kBool, torch::kByte, torch::kChar, torch::kShort, torch::kInt, torch::kLong, torch::kHalf,
                  torch::kFloat, torch::kDouble}) {
    auto t = (torch::rand({2, 3, 4}) * 100).to(dt);
    auto back = parse(encode_npy(t));
    EXPECT_EQ(back.scalar_type(), dt);
    EXPECT_TRUE(back.equal(t)) << c10::toString(dt);
    EXPECT_EQ(npy_header(dt, {2, 3, 4}).size() % 64, 0u);
  }
  EXPECT_EQ(parse(encode_npy(torch::zeros({0, 5}))).sizes(), torch::IntArrayRef({0, 5}));
}

TEST(Npy, RejectsHostileHeaders) {
  const std::string d8(8, '\0');
  auto bad = [&](const std::string& dict, const std::string& data) {
    EXPECT_THROW(parse(npy_bytes(dict, data)), Error) << dict;
  };
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", d8);          // data too short
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", d8 + "x");    // trailing data
  bad("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", d8);          // big-endian
  bad("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", d8);         // complex
  bad("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", d8);           // pickled objects
  bad("{'descr': '<U2', 'fortran_order': False, 'shape': (1,), }", d8);          // unicode
  bad("{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", d8);          // no torch uint64
  bad("{'descr': '|f8', 'fortran_order': False, 'shape': (1,), }", d8);          // multi-byte, no order
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", d8);         // negative dimension
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", d8);  // overflow
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", d8);
  bad("{'descr': '<f8', 'fortran_order': False}", d8);                           // no shape
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}", d8);    // unknown key
  bad("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}", d8);
  bad("{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,), }", d8);
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), } junk", d8);
  bad("{'descr': '<f8, 'fortran_order': False, 'shape': (1,), }", d8);           // broken quoting
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (1,", d8);              // unterminated
  bad(std::string("{'descr': '<f8'\0, 'fortran_order': False, 'shape': (1,), }", 58), d8);
  bad("{'descr': '<f8', 'fortran_order': False, 'shape': (1 1), }", d8);
  // Header length pointing past the end, bad magic, unknown version, truncated prefix.
  std::string longhdr = npy_bytes("{}", "");
  longhdr[8] = char(0xFF);
  EXPECT_THROW(parse(longhdr), Error);
  EXPECT_THROW(parse("\x93NUMPZ\x01\x00\x02\x00{}"), Error);
  auto v9 = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", d8);
  v9[6] = 9;
  EXPECT_THROW(parse(v9), Error);
  EXPECT_THROW(parse("\x93NUMPY\x01"), Error);
}

TEST(Npz, SampleBatchRoundTripsWithDitQuantization) {
  torch::manual_seed(8);
  auto x = torch::rand({5, 3, 4, 6}) * 2.4 - 1.2;  // beyond [-1, 1] on purpose: clamped
  x[0][0][0][0] = -1.0;  // 127.5·(−1) + 128 = 0.5 → 0
  x[0][0][0][1] = 1.0;   // 255.5 → clamped to 255
  x[0][0][0][2] = 0.0;   // 128
  auto labels = torch::tensor({3, 1, 4, 1, 5}, torch::kLong);
  const auto path = temp_path("batch.npz");
  write_npz_images(path, x, labels);
  NpzReader npz(path);
  EXPECT_EQ(npz.names(), (std::vector<std::string>{"arr_0", "arr_1"}));
  auto a = npz.get("arr_0");
  ASSERT_EQ(a.sizes(), torch::IntArrayRef({5, 4, 6, 3}));
  EXPECT_EQ(a.scalar_type(), torch::kByte);
  auto expect = (x * 127.5 + 128).clamp(0, 255).floor().to(torch::kByte).permute({0, 2, 3, 1});
  EXPECT_TRUE(a.equal(expect));
  EXPECT_EQ(a[0][0][0][0].item<int>(), 0);
  EXPECT_EQ(a[0][0][1][0].item<int>(), 255);
  EXPECT_EQ(a[0][0][2][0].item<int>(), 128);
  EXPECT_TRUE(npz.get("arr_1").equal(labels));
  EXPECT_THROW(npz.get("arr_2"), Error);
  // A stored array is a view of the mapped file that outlives its reader (it keeps the map alive).
  torch::Tensor kept;
  {
    NpzReader again(path);
    kept = again.get("arr_0");
  }
  EXPECT_TRUE(kept.equal(expect));
  // Read back as an eval input: NCHW uint8 with the labels.
  auto in = load_eval_input(path, "", "");
  EXPECT_TRUE(in.images.equal(expect.permute({0, 3, 1, 2})));
  EXPECT_TRUE(in.labels.equal(labels));
  EXPECT_THROW(write_npz_images(temp_path("bad.npz"), x, torch::tensor({1, 2}, torch::kLong)), Error);
}

// A run's batches streamed into the file one after another make the file one write makes, byte for
// byte; a wrong count or shape is an error and leaves no file behind.
TEST(Npz, StreamedBatchesMakeTheSameFile) {
  torch::manual_seed(9);
  auto x = torch::rand({7, 3, 5, 4}) * 2 - 1;
  auto labels = torch::tensor({0, 1, 2, 3, 4, 5, 6}, torch::kLong);
  const auto whole = temp_path("whole.npz"), streamed = temp_path("streamed.npz");
  write_npz_images(whole, x, labels);
  {
    NpzImageWriter npz(streamed, 7);
    npz.add(x.narrow(0, 0, 3));
    npz.add(x.narrow(0, 3, 3));
    npz.add(x.narrow(0, 6, 1));
    npz.finish(labels);
  }
  EXPECT_EQ(read_text_file(streamed), read_text_file(whole));
  const auto short_run = temp_path("short.npz");
  {
    NpzImageWriter npz(short_run, 7);
    npz.add(x.narrow(0, 0, 3));
    EXPECT_THROW(npz.add(torch::zeros({1, 3, 5, 5})), Error);  // another image size
    EXPECT_THROW(npz.add(x), Error);                            // 3 + 7 > 7
    EXPECT_THROW(npz.finish(labels), Error);                    // 3 of 7
  }
  EXPECT_FALSE(std::filesystem::exists(short_run));
  EXPECT_THROW(NpzImageWriter(temp_path("none.npz"), 0), Error);
}

TEST(Npz, StatisticsRoundTripAndCompressedEntries) {
  auto s = feature_stats(torch::randn({40, 6}));
  const auto path = temp_path("stats.npz");
  write_stats_npz(path, s);
  auto back = read_stats_npz(path);
  EXPECT_TRUE(back.mu.equal(s.mu));
  EXPECT_TRUE(back.sigma.equal(s.sigma));
  // np.savez_compressed: deflated entries inflate to the same arrays.
  auto mu = torch::arange(1000, kF64);
  auto z = NpzReader(write_file("z.npz", deflated_zip("mu.npy", encode_npy(mu))));
  EXPECT_TRUE(z.get("mu").equal(mu));
  // A claimed size the compressed data cannot hold, and corrupt compressed data, are refused.
  EXPECT_THROW(NpzReader(write_file("z1.npz", deflated_zip("mu.npy", encode_npy(mu), 1u << 31))).get("mu"), Error);
  EXPECT_THROW(NpzReader(write_file("z2.npz", deflated_zip("mu.npy", encode_npy(mu), 8100))).get("mu"), Error);
  auto broken = deflated_zip("mu.npy", encode_npy(mu));
  broken[40] ^= 0x55;
  EXPECT_THROW(NpzReader(write_file("z3.npz", broken)).get("mu"), Error);
  // Statistics files must hold matching, finite mu and sigma.
  write_npz(temp_path("s1.npz"), {{"mu", torch::zeros({3}, kF64)}, {"sigma", torch::eye(4, kF64)}});
  EXPECT_THROW(read_stats_npz(temp_path("s1.npz")), Error);
  write_npz(temp_path("s2.npz"), {{"mu", torch::zeros({3}, kF64)}});
  EXPECT_THROW(read_stats_npz(temp_path("s2.npz")), Error);
}

TEST(EvalInputs, LabelsFromListsAndFiles) {
  EXPECT_TRUE(parse_labels("3,1, 4").equal(torch::tensor({3, 1, 4}, torch::kLong)));
  EXPECT_TRUE(parse_labels(write_file("l.txt", "7 8\n9,")).equal(torch::tensor({7, 8, 9}, torch::kLong)));
  EXPECT_THROW(parse_labels("3,x"), Error);
  EXPECT_THROW(parse_labels("missing-file.txt"), Error);
  EXPECT_THROW(parse_labels(""), Error);
  EXPECT_THROW(load_eval_input(temp_path("does-not-exist.npz"), "", ""), Error);
}

