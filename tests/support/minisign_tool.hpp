// Keys and signatures made by the real `minisign` (Debian's package), for the
// tests of signed payloads: what an operator's signing step writes.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace armdock::test {

struct MinisignKeyPair {
    std::filesystem::path publicKey;  // NAME.pub
    std::filesystem::path secretKey;  // NAME.key (no password)
    std::string keyId;                // as minisign prints it, from the public key's comment
};

inline std::string readText(const std::filesystem::path& file)
{
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

inline std::string shellQuoted(const std::string& text)
{
    std::string out = "'";
    for (char c : text)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

inline void runMinisign(const std::string& arguments)
{
    const std::string command = "minisign " + arguments + " >/dev/null 2>&1 </dev/null";
    if (std::system(command.c_str()) != 0)
        throw std::runtime_error("`" + command + "` failed (is minisign installed? scripts/install-deps.sh)");
}

// `minisign -G -W`: a key pair in `dir`, the public key as NAME.pub.
inline MinisignKeyPair makeMinisignKey(const std::filesystem::path& dir, const std::string& name)
{
    std::filesystem::create_directories(dir);
    MinisignKeyPair pair{dir / (name + ".pub"), dir / (name + ".key"), ""};
    std::filesystem::remove(pair.publicKey);
    std::filesystem::remove(pair.secretKey);
    runMinisign("-G -W -p " + shellQuoted(pair.publicKey) + " -s " + shellQuoted(pair.secretKey));
    const std::string text = readText(pair.publicKey);
    const std::string marker = "minisign public key ";
    const auto at = text.find(marker);
    pair.keyId = at == std::string::npos ? "" : text.substr(at + marker.size(), text.find('\n', at) - at - marker.size());
    return pair;
}

// `minisign -S`: signs `file` into `signature` (default FILE.minisig) with
// `trustedComment` (minisign's own when empty); `legacy`: the -l form.
inline std::filesystem::path signWithMinisign(const MinisignKeyPair& key, const std::filesystem::path& file, const std::string& trustedComment,
                                              bool legacy = false, std::filesystem::path signature = {})
{
    if (signature.empty())
        signature = file.string() + ".minisig";
    std::filesystem::remove(signature);
    runMinisign(std::string("-S") + (legacy ? " -l" : "") + " -s " + shellQuoted(key.secretKey) + " -m " + shellQuoted(file) + " -x " +
                shellQuoted(signature) + (trustedComment.empty() ? "" : " -t " + shellQuoted(trustedComment)));
    return signature;
}

}  // namespace armdock::test
