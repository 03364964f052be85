// Benchmark 6: staging throughput.
//
// The agent's verify + stage of a 30 MiB engine, with its own code
// (core/source_verifier: open with O_NOFOLLOW, owner/mode/ELF checks;
// core/staging: copy beside the target while hashing SHA-256 and SHA-1, then
// fsync the file and the folder), against `sha256sum FILE` followed by
// `cp FILE DEST` on the same file, alternating, page cache warm for both.
// Then the same with a minisign signature (6b): the agent also hashes
// BLAKE2b-512 in its one pass and checks the Ed25519 signature, against
// `minisign -V` followed by sha256sum and cp.
// And the package owner check (6c) on this machine's own dpkg database: the
// agent's read of it against `dpkg -S` of the same target.
// No sandbox needed: the files live in a fresh folder under /tmp.
// ARMDOCK_BENCH_STAGING_ROUNDS (default 10) rounds, ARMDOCK_BENCH_STAGING_MIB (default 30).
#include <random>

#include "bench_common.hpp"
#include "core/durable_fs.hpp"
#include "core/package_owner.hpp"
#include "core/payload_signature.hpp"
#include "core/sha_digest.hpp"
#include "core/source_verifier.hpp"
#include "core/staging.hpp"

using namespace armdock::bench;

int main()
{
    const int rounds = envInt("ARMDOCK_BENCH_STAGING_ROUNDS", 10);
    const std::size_t mib = static_cast<std::size_t>(envInt("ARMDOCK_BENCH_STAGING_MIB", 30));
    char tmpl[] = "/tmp/armdock-bench-staging.XXXXXX";
    if (!::mkdtemp(tmpl)) {
        std::perror("mkdtemp");
        return 1;
    }
    const fs::path dir = tmpl;
    struct Cleanup {
        fs::path dir;
        ~Cleanup() { fs::remove_all(dir); }
    } cleanup{dir};
    fs::create_directories(dir / "target");

    // An ELF executable of this machine (/bin/true) padded with random bytes to the size wanted.
    const fs::path source = dir / "docker-new";
    fs::copy_file("/bin/true", source);
    {
        std::ofstream out(source, std::ios::app | std::ios::binary);
        std::mt19937_64 rng(42);
        std::vector<std::uint64_t> block(1 << 16);
        std::size_t left = mib * 1024 * 1024 - fs::file_size(source);
        while (left > 0) {
            for (auto& w : block)
                w = rng();
            std::size_t n = std::min(left, block.size() * sizeof(std::uint64_t));
            out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
            left -= n;
        }
    }
    if (::chown(source.c_str(), 0, 0) != 0)
        std::perror("chown");
    fs::permissions(source, fs::perms(0755));
    const fs::path target = dir / "target/docker";
    const fs::path copy = dir / "target/docker.cp";
    const double size = static_cast<double>(fs::file_size(source)) / (1024 * 1024);
    // Warm the page cache.
    (void)armdock::sha256OfFile(source);

    std::vector<double> agent, reference;
    for (int i = 0; i < rounds; ++i) {
        {
            auto t0 = Clock::now();
            auto opened = armdock::openAndCheckSource("docker", source.string(), armdock::SourceRules{});
            auto staged = armdock::stageCopy(opened.fd.get(), opened.st, "docker", target, 0755, "bench" + std::to_string(i), "");
            agent.push_back(msBetween(t0, Clock::now()));
            fs::remove(staged.staged);
        }
        {
            auto t0 = Clock::now();
            int a = runWait({"/usr/bin/sha256sum", source.string()});
            int b = runWait({"/bin/cp", source.string(), copy.string()});
            reference.push_back(msBetween(t0, Clock::now()));
            if (a != 0 || b != 0) {
                std::cerr << "sha256sum or cp failed\n";
                return 1;
            }
            fs::remove(copy);
        }
        std::cout << "round " << i + 1 << ": agent " << formatted(agent.back()) << " ms   sha256sum+cp " << formatted(reference.back()) << " ms"
                  << std::endl;
    }
    const double a = median(agent), r = median(reference);
    std::cout << "\n6. Staging a " << formatted(size, 0) << " MiB engine, " << rounds << " rounds alternating\n";
    std::cout << "   agent (verify + copy + SHA-256 + SHA-1 + fsync) runs: " << join(agent) << "  median " << formatted(a) << " ms ("
              << formatted(size / a * 1000, 0) << " MiB/s)\n";
    std::cout << "   sha256sum + cp (no fsync)                 runs: " << join(reference) << "  median " << formatted(r) << " ms ("
              << formatted(size / r * 1000, 0) << " MiB/s)\n";
    addSummary({"6 staging", "verify+copy+SHA-256 of " + formatted(size, 0) + " MiB, median ms", formatted(a), "sha256sum+cp " + formatted(r), ratio(a, r),
                "< sha256sum+cp", a < r});

    // 6b: signed. A key made by minisign, the signature in its default (prehashed) form.
    const fs::path keys = dir / "keys";
    fs::create_directories(keys);
    const std::string quiet = " >/dev/null 2>&1 </dev/null";
    if (std::system(("minisign -G -W -p " + (keys / "bench.pub").string() + " -s " + (dir / "bench.key").string() + quiet).c_str()) != 0 ||
        std::system(("minisign -S -s " + (dir / "bench.key").string() + " -m " + source.string() + " -t version=1" + quiet).c_str()) != 0) {
        std::cerr << "minisign failed (scripts/install-deps.sh installs it)\n";
        return 1;
    }
    const std::string signatureText = armdock::readSmallFile(source.string() + ".minisig");
    armdock::TrustSection trust;
    trust.keys = keys;
    std::vector<double> signedAgent, signedReference;
    for (int i = 0; i < rounds; ++i) {
        {
            auto t0 = Clock::now();
            auto opened = armdock::openAndCheckSource("docker", source.string(), armdock::SourceRules{});
            const auto accepted = armdock::acceptSignature("docker", signatureText, "bench", armdock::readTrustedKeys(keys), trust, true, false);
            auto staged = armdock::stageCopy(opened.fd.get(), opened.st, "docker", target, 0755, "signed" + std::to_string(i), "", &accepted);
            signedAgent.push_back(msBetween(t0, Clock::now()));
            fs::remove(staged.staged);
        }
        {
            auto t0 = Clock::now();
            int v = runWait({"/usr/bin/minisign", "-Vq", "-m", source.string(), "-p", (keys / "bench.pub").string()});
            int a2 = runWait({"/usr/bin/sha256sum", source.string()});
            int b2 = runWait({"/bin/cp", source.string(), copy.string()});
            signedReference.push_back(msBetween(t0, Clock::now()));
            if (v != 0 || a2 != 0 || b2 != 0) {
                std::cerr << "minisign -V, sha256sum or cp failed\n";
                return 1;
            }
            fs::remove(copy);
        }
        std::cout << "signed round " << i + 1 << ": agent " << formatted(signedAgent.back()) << " ms   minisign -V+sha256sum+cp "
                  << formatted(signedReference.back()) << " ms" << std::endl;
    }
    const double sa = median(signedAgent), sr = median(signedReference);
    std::cout << "\n6b. Staging the same engine with a minisign signature, " << rounds << " rounds alternating\n";
    std::cout << "   agent (the same + BLAKE2b-512 + Ed25519)    runs: " << join(signedAgent) << "  median " << formatted(sa) << " ms ("
              << formatted(size / sa * 1000, 0) << " MiB/s)\n";
    std::cout << "   minisign -V + sha256sum + cp (no fsync)   runs: " << join(signedReference) << "  median " << formatted(sr) << " ms ("
              << formatted(size / sr * 1000, 0) << " MiB/s)\n";
    addSummary({"6b signed staging", "the same with a minisign signature, median ms", formatted(sa), "minisign -V+sha256sum+cp " + formatted(sr),
                ratio(sa, sr), "< minisign -V+sha256sum+cp", sa < sr});

    // 6c: who owns /usr/sbin/dockerd, read from this machine's dpkg database.
    const fs::path owned = "/usr/sbin/dockerd";
    std::size_t lists = 0;
    for (const auto& e : fs::directory_iterator("/var/lib/dpkg/info"))
        lists += e.path().extension() == ".list";
    std::vector<double> ownerAgent, ownerDpkg;
    std::string owner;
    for (int i = 0; i < rounds; ++i) {
        auto t0 = Clock::now();
        const auto found = armdock::findPackageOwners("/", {owned});
        ownerAgent.push_back(msBetween(t0, Clock::now()));
        owner = found.at(owned).packages.empty() ? "(none)" : found.at(owned).packages.front();
        t0 = Clock::now();
        runWait({"/bin/sh", "-c", "dpkg -S " + owned.string() + " >/dev/null 2>&1"});
        ownerDpkg.push_back(msBetween(t0, Clock::now()));
    }
    const double oa = median(ownerAgent), od = median(ownerDpkg);
    std::cout << "\n6c. The package that owns " << owned.string() << " (" << owner << "), among " << lists << " file lists, " << rounds
              << " rounds\n";
    std::cout << "   agent (reads dpkg's database)  runs: " << join(ownerAgent) << "  median " << formatted(oa) << " ms\n";
    std::cout << "   dpkg -S                        runs: " << join(ownerDpkg) << "  median " << formatted(od) << " ms\n";
    addSummary({"6c package owner", "owner of " + owned.string() + " among " + std::to_string(lists) + " file lists, median ms", formatted(oa),
                "dpkg -S " + formatted(od), ratio(oa, od), "< dpkg -S", oa < od});
    return 0;
}
