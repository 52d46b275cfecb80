export * as StreamBrowser from "./StreamBrowser.ts"
