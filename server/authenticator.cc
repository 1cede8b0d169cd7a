#include "server/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace matbert {
namespace {

constexpr absl::string_view kRankPrefix = "rank:";
constexpr size_t kMinTokenLength = 16;

std::string DigestOf(absl::string_view token) {
  Sha256 hash;
  hash.Update(token);
  return hash.HexDigest();
}

bool ValidUserName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kUser:
      return "user";
    case Role::kAdmin:
      return "admin";
    case Role::kRank:
      return "rank";
  }
  return "?";
}

}  // namespace

absl::StatusOr<std::vector<TokenEntry>> ParseTokensFile(absl::string_view text,
                                                        absl::string_view source) {
  std::vector<TokenEntry> entries;
  std::map<std::string, int> token_line;  // token -> line it was first listed on
  std::map<std::string, Role> user_role;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(source, " line ", line_number, ": ", what));
    };
    if (fields.size() != 3) {
      return error(absl::StrCat("expected TOKEN USER ROLE, got ", fields.size(), " field(s)"));
    }
    TokenEntry entry{std::string(fields[0]), std::string(fields[1]), Role::kUser};
    if (entry.token.size() < kMinTokenLength) {
      return error(absl::StrCat("the token has ", entry.token.size(), " characters; at least ",
                                kMinTokenLength, " are needed (openssl rand -hex 16 makes one)"));
    }
    if (absl::StartsWith(entry.token, kRankPrefix)) {
      return error("a token may not start with \"rank:\" (the ranks' credentials do)");
    }
    if (!ValidUserName(entry.user)) {
      return error(absl::StrCat("user \"", entry.user,
                                "\" must be 1-64 letters, digits, \".\", \"_\" or \"-\""));
    }
    if (fields[2] == "admin") {
      entry.role = Role::kAdmin;
    } else if (fields[2] != "user") {
      return error(absl::StrCat("role \"", fields[2], "\" is not one of user, admin"));
    }
    if (auto [it, fresh] = token_line.emplace(entry.token, line_number); !fresh) {
      return error(absl::StrCat("this token is already listed on line ", it->second));
    }
    if (auto [it, fresh] = user_role.emplace(entry.user, entry.role);
        !fresh && it->second != entry.role) {
      return error(absl::StrCat("user ", entry.user, " is already listed as ", RoleName(it->second),
                                "; a user has one role"));
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) return absl::InvalidArgumentError(absl::StrCat(source, " lists no token"));
  return entries;
}

absl::StatusOr<std::string> LoadOrCreateRankSecret(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (text.ok()) {
    const std::string hex(absl::StripAsciiWhitespace(*text));
    const bool is_hex = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
                          return absl::ascii_isxdigit(static_cast<unsigned char>(c));
                        });
    if (!is_hex) {
      return absl::DataLossError(
          absl::StrCat(path,
                       " is not 64 hex digits; remove it to make a new secret (running "
                       "ranks then lose their credentials)"));
    }
    return absl::HexStringToBytes(hex);
  }
  if (!absl::IsNotFound(text.status())) return text.status();
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("OpenSSL's random generator failed");
  }
  std::string secret(reinterpret_cast<const char*>(bytes), sizeof(bytes));
  RETURN_IF_ERROR(WriteFileAtomically(path, absl::BytesToHexString(secret) + "\n", 0600));
  return secret;
}

Authenticator::Authenticator(const std::vector<TokenEntry>& tokens, std::string rank_secret)
    : rank_secret_(std::move(rank_secret)) {
  std::set<std::string> users;
  for (const TokenEntry& entry : tokens) {
    by_digest_[DigestOf(entry.token)] = entry;
    users.insert(entry.user);
  }
  users_ = static_cast<int>(users.size());
}

absl::StatusOr<Principal> Authenticator::Identify(const grpc::CallbackServerContext* ctx) const {
  if (!enabled()) return Principal{};
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "this matbertd requires a token (matbertctl --token or MATBERT_TOKEN)");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWith(value, "Bearer ")) {
    return absl::UnauthenticatedError("the authorization header must be \"Bearer <token>\"");
  }
  return IdentifyToken(value.substr(7));
}

absl::StatusOr<Principal> Authenticator::IdentifyToken(absl::string_view token) const {
  if (!enabled()) return Principal{};
  if (absl::StartsWith(token, kRankPrefix)) {
    // rank:<job id>:<hex MAC>; the MAC is compared in constant time.
    const absl::string_view rest = token.substr(kRankPrefix.size());
    const size_t colon = rest.rfind(':');
    if (colon != absl::string_view::npos) {
      const std::string job_id(rest.substr(0, colon));
      const absl::string_view mac = rest.substr(colon + 1);
      const std::string expected = RankMac(job_id);
      if (mac.size() == expected.size() &&
          CRYPTO_memcmp(mac.data(), expected.data(), expected.size()) == 0) {
        return Principal{"", Role::kRank, job_id};
      }
    }
    return absl::UnauthenticatedError("wrong rank credential");
  }
  // Looked up by digest: the lookup's timing tells nothing about the token's bytes.
  auto it = by_digest_.find(DigestOf(token));
  if (it == by_digest_.end()) return absl::UnauthenticatedError("wrong token");
  return Principal{it->second.user, it->second.role, ""};
}

std::string Authenticator::RankMac(absl::string_view job_id) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const std::string message = absl::StrCat("matbert rank credential v1\n", job_id);
  HMAC(EVP_sha256(), rank_secret_.data(), static_cast<int>(rank_secret_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac), length));
}

std::string Authenticator::RankCredential(absl::string_view job_id) const {
  if (!enabled()) return "";
  return absl::StrCat(kRankPrefix, job_id, ":", RankMac(job_id));
}

absl::Status MayUseClientApi(const Principal& caller) {
  if (caller.role != Role::kRank) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("the credential of job ", caller.job_id,
                   "'s ranks is good for reporting that job only, not for the client API"));
}

absl::Status MayActOnJob(const Principal& caller, const std::string& job_id,
                         const std::string& owner) {
  RETURN_IF_ERROR(MayUseClientApi(caller));
  if (caller.role == Role::kAdmin || caller.user == owner) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "job ", job_id, " belongs to ", owner.empty() ? "nobody (submitted without a token)" : owner,
      "; user ", caller.user, " may act on its own jobs only (an admin on all)"));
}

absl::Status MayReportFor(const Principal& caller, const std::string& job_id) {
  if (caller.role == Role::kAdmin) return absl::OkStatus();
  if (caller.role == Role::kRank && caller.job_id == job_id) return absl::OkStatus();
  return absl::PermissionDeniedError(
      caller.role == Role::kRank
          ? absl::StrCat("this rank credential is for job ", caller.job_id, ", not job ", job_id)
          : absl::StrCat("user ", caller.user,
                         " may not report for ranks; WorkerService takes the ranks' credentials"));
}

}  // namespace matbert
