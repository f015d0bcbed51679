/// Rules for names and ids that arrive from outside.
public enum Validation {
    /// Meeting ids in URLs: 1–64 of letters, digits, `-` and `_`.
    public static func meetingID(_ raw: String) throws(SignalingError) -> String {
        guard (1...64).contains(raw.count), raw.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }) else {
            throw .badRequest("meeting id must be 1-64 letters, digits, '-' or '_'")
        }
        return raw
    }

    /// Display names: trimmed, 1–64 characters, no control characters.
    public static func displayName(_ raw: String) throws(SignalingError) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .badMessage("a display name is required") }
        guard trimmed.count <= 64 else { throw .badMessage("display name longer than 64 characters") }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badMessage("display name contains control characters")
        }
        return trimmed
    }

    /// A DNS name for allowed email domains: labels of letters, digits and '-', at least one dot.
    public static func isDomain(_ raw: String) -> Bool {
        let labels = raw.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        guard raw.count <= 253, labels.count >= 2 else { return false }
        return labels.allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        }
    }

    /// Report reasons: 1–500 characters.
    public static func reportReason(_ raw: String) throws(SignalingError) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .badMessage("a report needs a reason") }
        guard trimmed.count <= 500 else { throw .badMessage("report reason longer than 500 characters") }
        return trimmed
    }

    public static func chatText(_ raw: String) throws(SignalingError) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .badMessage("empty chat message") }
        guard trimmed.count <= 2000 else { throw .badMessage("chat message longer than 2000 characters") }
        return trimmed
    }
}

import Foundation
