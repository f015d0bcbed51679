import Hummingbird
import Foundation
import HTTPTypes
import NIOCore

/// Request contexts that keep the client's address: attempt limits count per address.
public struct ParleyRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

extension RemoteAddressRequestContext {
    /// The client's IP address (or "unknown"). Behind a proxy the operator trusts
    /// (`--trusted-proxy`), the last address the proxy put in X-Forwarded-For: attempt limits
    /// count per real client, not per proxy. Anyone else's X-Forwarded-For is ignored.
    func clientAddress(_ headers: HTTPFields, trustedProxies: Set<String>) -> String {
        forwardedClientAddress(peer: remoteAddress, headers, trustedProxies: trustedProxies)
    }
}

/// The address attempt limits count for a request from `peer` with these headers (see above).
func forwardedClientAddress(peer address: SocketAddress?, _ headers: HTTPFields, trustedProxies: Set<String>) -> String {
    let peer = address?.ipAddress ?? "unknown"
    guard trustedProxies.contains(peer), let forwarded = headers[HTTPField.Name("X-Forwarded-For")!],
          let last = forwarded.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty else { return peer }
    return last
}
