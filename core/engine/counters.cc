#include "core/engine/counters.h"

namespace edgehub::core {

namespace {
constexpr std::string_view kNames[] = {
#define EDGEHUB_COUNTER_NAME(name, help) #name,
    EDGEHUB_COUNTERS(EDGEHUB_COUNTER_NAME)
#undef EDGEHUB_COUNTER_NAME
};
constexpr std::string_view kHelp[] = {
#define EDGEHUB_COUNTER_HELP(name, help) help,
    EDGEHUB_COUNTERS(EDGEHUB_COUNTER_HELP)
#undef EDGEHUB_COUNTER_HELP
};
static_assert(std::size(kNames) == kCounterCount);
}  // namespace

std::string_view counterName(Counter counter) { return kNames[static_cast<size_t>(counter)]; }
std::string_view counterHelp(Counter counter) { return kHelp[static_cast<size_t>(counter)]; }

}  // namespace edgehub::core
