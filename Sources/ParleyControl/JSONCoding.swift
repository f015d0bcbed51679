import Foundation

enum JSONCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    static let decoder = JSONDecoder()
}

extension JSONDecoder: @retroactive @unchecked Sendable {}
extension JSONEncoder: @retroactive @unchecked Sendable {}
