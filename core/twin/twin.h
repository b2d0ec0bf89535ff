#pragma once
// The twin document of one module (issue #7; iothub-mqtt-dialect.md §5): its desired and
// reported sections, their $version counters and $metadata timestamps.
//
// A pure value type: no threads, no I/O, no clock. Callers pass the time (`now_ms`, milliseconds
// since the Unix epoch, from their TimeSource) so tests need no wall clock. The document is held
// by a private pimpl (nlohmann/json stays inside twin.cc, style rule 2); a Twin owns its whole
// document and shares nothing with its copies.
//
// Versions: like IoT Hub, a new twin has both sections empty at $version 1. Every accepted
// reported patch adds 1 to the reported version; setDesired adds 1 to the desired version when
// the desired section actually changes.
//
// Validation (IoT Hub's limits, which edgeHub copies; applied to reported patches and to desired
// documents alike, since whatever we accept is later pushed to the cloud and must not be refused
// there):
//   - a section serialized compactly (without $version/$metadata) is at most kMaxTwinBytes, and
//     so is a patch;
//   - nesting depth at most kMaxTwinDepth: the section (or patch) object is depth 1, and every
//     object or array value nested in it adds one level;
//   - property names: non-empty, at most kMaxPropertyNameBytes bytes of UTF-8, free of '$', '.',
//     ' ' and control characters (C0, DEL and C1). IoT Hub and the dialect reference forbid '$'
//     anywhere in a name, not only as its first character;
//   - string values (also inside arrays) at most kMaxStringValueBytes bytes;
//   - integers within +-kMaxTwinInteger (2^52).
// Every refusal is kInvalidArgument (the hub answers 400) and leaves the twin unchanged.
//
// $metadata: each section has {"$lastUpdated": "<ISO-8601 UTC, ms>"} at its root and, per
// property, {"$lastUpdated": ...} (objects recursively, arrays as one value), the time the
// property was last set by a patch. The desired side also has "$lastUpdatedVersion" (the desired
// version of that change) like IoT Hub. A section's root $lastUpdated is the time of the last
// accepted patch. A fresh twin's timestamps are its creation time (the Unix epoch for Twin()).
//
// Errors are Status values; no exception leaves any function here (nlohmann's are caught
// inside). Thread-safety: none; a value type with the contract of std::string (distinct objects
// may be used from different threads, one object must not be used concurrently).
// Hot/cold: cold (one call per twin request; documents are at most a few tens of KiB).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::core::twin {

// Whole reported (or desired) section, serialized compactly without $version/$metadata.
inline constexpr size_t kMaxTwinBytes = 32 * 1024;
// Nesting depth of a section (the section object itself is depth 1).
inline constexpr int kMaxTwinDepth = 10;
inline constexpr size_t kMaxPropertyNameBytes = 1024;
inline constexpr size_t kMaxStringValueBytes = 4 * 1024;
inline constexpr int64_t kMaxTwinInteger = int64_t{1} << 52;
// Patch and desired texts longer than this are refused before they are parsed. Larger than
// kMaxTwinBytes so that whitespace (a pretty-printed manifest) does not count against the limit,
// which applies to the compact form.
inline constexpr size_t kMaxInputTextBytes = 4 * kMaxTwinBytes;
// Stored texts (serialize()) longer than this are refused by parse() as damaged. Metadata can be
// several times larger than the section it describes (one timestamp per property), hence the
// margin.
inline constexpr size_t kMaxStoredBytes = 1024 * 1024;

class Twin {
 public:
  // An empty twin: desired {} and reported {}, both at $version 1, timestamps at the epoch.
  Twin();
  // The same, with the timestamps set to created_ms.
  explicit Twin(int64_t created_ms);
  ~Twin();
  Twin(const Twin& other);
  Twin& operator=(const Twin& other);
  // A moved-from Twin may only be destroyed or assigned to.
  Twin(Twin&& other) noexcept;
  Twin& operator=(Twin&& other) noexcept;

  // Reads the stored form (what serialize() wrote). Every problem means the stored copy is
  // damaged: kCorruption (the project's code for damaged stored data), naming what is wrong.
  // The sections are re-validated against the limits above.
  static Result<Twin> parse(std::string_view stored);
  // The stored form: compact JSON of the sections, versions and metadata (timestamps as ms).
  std::string serialize() const;

  // The body of a GET response:
  // {"desired":{...,"$metadata":{...},"$version":D},"reported":{...,"$metadata":{...},"$version":R}}
  std::string getResponse() const;

  int64_t desiredVersion() const;
  int64_t reportedVersion() const;
  // The desired / reported section without $version/$metadata, as compact JSON text.
  std::string desiredJson() const;
  std::string reportedJson() const;

  // Applies a JSON merge patch (RFC 7386: null deletes a member, and deleting a missing member
  // is fine; objects merge recursively; anything else, arrays included, replaces) to the reported
  // section, adds 1 to the reported $version and sets the $lastUpdated of the section and of
  // every touched property to now_ms. Returns the new reported version.
  // Refused (kInvalidArgument, twin unchanged): not valid JSON, not an object, any limit above
  // exceeded by the patch or by the resulting section, or "$version"/"$metadata" in the patch.
  Result<int64_t> patchReported(std::string_view patch_json, int64_t now_ms);

  // Makes the desired section equal to `desired_json` (a JSON object, e.g. a module's
  // properties.desired from the deployment manifest; null members count as absent, since a
  // merge patch cannot express a stored null). If the content differs from the current section:
  // adds 1 to the desired $version, updates the metadata of what changed, and returns the
  // difference as a merge patch (added or changed members with their new values, removed members
  // as null, recursively; only what changed; no "$version"). Returns std::nullopt and changes
  // nothing when the content is equal (member order is not compared).
  // Errors (kInvalidArgument, twin unchanged): not valid JSON, not an object, the limits above,
  // or a "$version"/"$metadata" member.
  Result<std::optional<std::string>> setDesired(std::string_view desired_json, int64_t now_ms);

  // The whole desired section plus "$version", for a module that reconnects and must catch up:
  // {...,"$version":D}.
  std::string desiredPatchForCatchUp() const;

  // ---- cloud sync (upstream twin topics) ----
  //
  // Reported side: the twin remembers the reported properties IoT Hub has acknowledged (the
  // "cloud baseline", {} until the first acknowledgement). What the cloud still lacks is the
  // difference between that baseline and the local section, so any number of patches made
  // while offline become one patch, and a member deleted locally is sent as null only if the
  // cloud was told of it (nothing the hub never sent is ever deleted upstream).
  //
  // Desired side: once the cloud has spoken (a twin GET answer or a desired patch), the cloud
  // owns the desired section: versions are the cloud's, and the manifest's copy is no longer
  // applied at start (desiredFromCloud()).

  // The merge patch that brings the cloud baseline to the local reported section, or
  // std::nullopt when they are equal.
  std::optional<std::string> reportedPatchForCloud() const;
  // The cloud acknowledged a patch sent when the reported section was `reported_json` (a
  // reportedJson() taken at send time): that becomes the baseline. kInvalidArgument if it is not
  // a JSON object.
  Status setCloudReported(std::string_view reported_json);
  std::string cloudReportedJson() const;

  // The cloud's whole desired section (from a twin GET answer: members plus "$version", and
  // "$metadata", which is ignored). If its version or content differs from the local section,
  // the section becomes it, at the cloud's version, and the result is the patch a module needs
  // (the difference plus "$version"); std::nullopt when nothing changed. Errors
  // (kInvalidArgument, twin unchanged): not an object, no integer "$version" >= 1, the limits.
  Result<std::optional<std::string>> setDesiredFromCloud(std::string_view section_json, int64_t now_ms);
  // The "desired" member of a twin GET answer ({"desired":{...},"reported":{...}}) as compact
  // text, for setDesiredFromCloud. kInvalidArgument if the body is not such a document.
  static Result<std::string> desiredOfGetResponse(std::string_view body);
  // A desired patch pushed by the cloud (`$iothub/twin/PATCH/properties/desired/?$version=V`,
  // body a merge patch that may carry "$version" too; the body's wins). Applied when its
  // version is newer than the local section's (or the section is still the manifest's); the
  // result is the patch for the module (with "$version"), std::nullopt for a stale one. Errors as
  // for setDesiredFromCloud.
  Result<std::optional<std::string>> patchDesiredFromCloud(std::string_view patch_json, int64_t topic_version,
                                                           int64_t now_ms);
  bool desiredFromCloud() const;

 private:
  struct Impl;
  explicit Twin(std::unique_ptr<Impl> impl);
  const Impl& impl() const;
  Impl& impl();

  std::unique_ptr<Impl> impl_;
};

}  // namespace edgehub::core::twin
